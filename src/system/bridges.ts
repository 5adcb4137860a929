// The TAP bridge of each member of a net link (docs/supervisor.md, "Links"):
// a supervised process running net-bridge.js, which joins the link like a
// cell and bridges it to a TAP device in the member cell's namespace.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ResolvedCell, ResolvedLink, ResolvedMember } from './check.js';
import type { ProcessSpec } from './cell-process.js';

const NET_BRIDGE = fileURLToPath(new URL('./net-bridge.js', import.meta.url));
const NET_ENDPOINT = fileURLToPath(new URL('../net/endpoint.js', import.meta.url));

/** Whether this build has the ivshmem-net layer the bridges run. */
export const netLayerAvailable = (): boolean => fs.existsSync(NET_ENDPOINT);

/** The process of the bridge for `member` of net link `link`; `env` carries its link endpoint. */
export function bridgeSpec(link: ResolvedLink, member: ResolvedMember, cell: ResolvedCell, env: NodeJS.ProcessEnv): ProcessSpec {
  const args = [NET_BRIDGE, '--link', link.name, '--tap', member.interface!];
  if (cell.netns) args.push('--netns', cell.netns);
  if (member.address) args.push('--address', member.address);
  if (link.mtu) args.push('--mtu', String(link.mtu));
  if (member.mac) args.push('--mac', member.mac);
  return {
    name: `${link.name}:${member.cell}`,
    command: process.execPath,
    args,
    env,
    restart: { policy: 'always', maxRestarts: 5, windowMs: 60_000, delayMs: 500 },
  };
}
