// `ivshm status` as a table: cells, then links with their members and counters.
import type { SystemStatus } from './status.js';
import { formatBytes } from '../units.js';

const pad = (rows: string[][]): string[] => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
};

const hex4 = (n: number): string => `0x${n.toString(16).padStart(4, '0')}`;
/** State Table values: small ones (net RESET..RUN) in decimal, session words in hex. */
export const stateText = (v: number): string => (v < 256 ? String(v) : `0x${v.toString(16).padStart(8, '0')}`);

function uptime(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60}s` : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

export function formatStatus(st: SystemStatus): string {
  const out: string[] = [];
  out.push(`system ${st.system} (${st.file}), supervisor pid ${st.pid}${st.privileged ? '' : ', unprivileged'}`);
  if (st.dashboard) out.push(`dashboard ${st.dashboard}`);
  out.push('');
  out.push(
    ...pad([
      ['CELL', 'STATE', 'PID', 'NETNS', 'UPTIME', 'RESTARTS', 'LINKS'],
      ...st.cells.map((c) => [c.name, c.state, c.pid ? String(c.pid) : '-', c.netns ?? '-', uptime(c.uptimeMs), `${c.restarts} (${c.restartPolicy})`, c.links.join(',') || '-']),
    ]),
  );
  out.push('');
  out.push(
    ...pad([
      ['LINK', 'KIND', 'PROTO', 'MEMBERS (id:cell state)', 'FRAMES/S', 'MSGS/S', 'BYTES/S', 'BELLS/S', 'JOINS', 'LEAVES'],
      ...st.links.map((l) => [
        l.name,
        l.kind,
        hex4(l.protocol),
        l.members.map((m) => `${m.id}:${m.cell} ${m.joined ? stateText(m.state) : 'absent'}`).join(', '),
        String(l.rates.frames),
        String(l.rates.messages),
        `${formatBytes(l.rates.bytes)}`,
        String(l.rates.doorbells),
        String(l.broker.joins),
        String(l.broker.leaves),
      ]),
    ]),
  );
  return out.join('\n');
}
