// The interactive peer of `ivshm peer`: one line per event, commands on
// stdin, like QEMU's ivshmem-client but with ivshmem 2.0 registers
// (docs/spec.md §1.3). Works over any IvshmemEndpoint.
import readline from 'node:readline';
import { InvalidArgumentError, IvshmError } from '../errors.js';
import type { IvshmemEndpoint } from '../ivshmem/endpoint.js';
import { parseInteger } from '../units.js';
import { timestamp } from './util.js';

export const PEER_COMMANDS = 'state V | ring PEER VECTOR | intctl 0|1 | oneshot 0|1 | write OFFSET TEXT | read PEER OFFSET LEN | dump | quit';

export interface ShellOptions {
  json: boolean;
  /** Extra fields for `dump` (e.g. counters of the backend). */
  counters?: () => unknown;
  /** How `write` reaches memory: the own output section by default. */
  writeTarget?: (dev: IvshmemEndpoint) => Buffer;
}

type Fields = Record<string, unknown>;

export class PeerShell {
  private readonly dev: IvshmemEndpoint;
  private readonly opts: ShellOptions;

  constructor(dev: IvshmemEndpoint, opts: ShellOptions) {
    this.dev = dev;
    this.opts = opts;
  }

  /** Print one event line: text for people, one JSON object per line for programs. */
  print(event: string, fields: Fields, text: string): void {
    if (this.opts.json) console.log(JSON.stringify({ event, ...fields }));
    else console.log(`${timestamp()} ${text}`);
  }

  start(onQuit: () => void): void {
    const d = this.dev;
    this.print(
      'joined',
      { id: d.id, maxPeers: d.maxPeers, vectors: d.vectors, protocol: d.protocol, link: d.name, sizes: d.sizes, peers: d.peers() },
      `joined link ${d.name} as peer ${d.id} of ${d.maxPeers}: ${d.vectors} vector(s), protocol 0x${d.protocol.toString(16).padStart(4, '0')}, ` +
        `state ${d.sizes.state} B, rw ${d.sizes.rw} B, output ${d.sizes.output} B; peers present: ${d.peers().join(', ')}`,
    );
    d.on('interrupt', (e) =>
      this.print('interrupt', { ...e }, `interrupt on vector ${e.vector} from ${e.from >= 0 ? `peer ${e.from}` : d.sizes.state > 0 ? 'the broker (state change)' : 'an unknown peer (QEMU eventfds do not name the sender)'}${e.count > 1 ? ` (x${e.count})` : ''}`),
    );
    d.on('state', (e) => this.print('state', { ...e }, `peer ${e.peer} state ${e.previous} -> ${e.value}`));
    d.on('peer-joined', (e) => this.print('peer-joined', { ...e }, `peer ${e.peer} joined`));
    d.on('peer-gone', (e) => this.print('peer-gone', { ...e }, `peer ${e.peer} gone (${e.reason})`));
    d.on('close', (e) => {
      this.print('closed', { ...e }, `link closed: ${e.reason}`);
      onQuit();
    });
    // stdin end is not a reason to leave: the peer stays on the link (no
    // busy loop either; readline simply stops reading).
    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    rl.on('line', (line) => {
      const r = this.execute(line);
      if (r === 'quit') {
        rl.close();
        onQuit();
      }
    });
  }

  /** Run one command line. */
  execute(line: string): 'quit' | void {
    const words = line.trim().split(/\s+/);
    const cmd = words[0] ?? '';
    if (cmd === '') return;
    const d = this.dev;
    try {
      switch (cmd) {
        case 'state': {
          const v = parseInteger(arg(words, 1, 'V'), 0, 0xffffffff, 'state V');
          d.setState(v);
          return this.print('ok', { command: 'state', value: v }, `state set to ${v}`);
        }
        case 'ring': {
          const peer = parseInteger(arg(words, 1, 'PEER'), 0, 0xffff, 'ring PEER');
          const vector = parseInteger(arg(words, 2, 'VECTOR'), 0, 0xffff, 'ring VECTOR');
          const delivered = d.ring(peer, vector);
          return this.print(
            'ok',
            { command: 'ring', peer, vector, delivered },
            delivered ? `rang peer ${peer} vector ${vector}` : `doorbell to peer ${peer} vector ${vector} dropped (no such peer on the link, or vector >= ${d.vectors})`,
          );
        }
        case 'intctl': {
          d.intControl = parseInteger(arg(words, 1, '0|1'), 0, 1, 'intctl') === 1;
          return this.print('ok', { command: 'intctl', value: d.intControl ? 1 : 0 }, `INT_CONTROL = ${d.intControl ? 1 : 0}`);
        }
        case 'oneshot': {
          d.oneShot = parseInteger(arg(words, 1, '0|1'), 0, 1, 'oneshot') === 1;
          return this.print('ok', { command: 'oneshot', value: d.oneShot ? 1 : 0 }, `one-shot mode = ${d.oneShot ? 1 : 0}`);
        }
        case 'write': {
          const offset = parseInteger(arg(words, 1, 'OFFSET'), 0, Number.MAX_SAFE_INTEGER, 'write OFFSET');
          const m = /^\s*\S+\s+\S+\s(.*)$/.exec(line);
          const text = Buffer.from(m?.[1] ?? '', 'utf8');
          const target = this.opts.writeTarget ? this.opts.writeTarget(d) : d.output;
          if (offset > target.length - text.length) {
            throw new InvalidArgumentError(`write of ${text.length} bytes at ${offset} does not fit the ${target.length}-byte section`);
          }
          text.copy(target, offset);
          return this.print('ok', { command: 'write', offset, length: text.length }, `wrote ${text.length} bytes at offset ${offset}`);
        }
        case 'read': {
          const peer = parseInteger(arg(words, 1, 'PEER'), 0, 0xffff, 'read PEER');
          const offset = parseInteger(arg(words, 2, 'OFFSET'), 0, Number.MAX_SAFE_INTEGER, 'read OFFSET');
          const len = parseInteger(arg(words, 3, 'LEN'), 0, 65536, 'read LEN');
          const data = d.readOutput(peer, offset, len);
          const text = data.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
          return this.print('read', { peer, offset, length: len, hex: data.toString('hex'), text }, `read peer ${peer} offset ${offset}: "${text}" (hex ${data.toString('hex')})`);
        }
        case 'dump': {
          const fields = {
            id: d.id,
            maxPeers: d.maxPeers,
            vectors: d.vectors,
            protocol: d.protocol,
            link: d.name,
            isolated: d.isolated,
            sizes: d.sizes,
            state: d.state,
            intControl: d.intControl ? 1 : 0,
            oneShot: d.oneShot ? 1 : 0,
            peers: d.peers(),
            stateTable: d.stateTable(),
            counters: this.opts.counters?.(),
          };
          return this.print('dump', fields, `dump ${JSON.stringify(fields)}`);
        }
        case 'quit':
          return 'quit';
        case 'help':
          return this.print('help', { commands: PEER_COMMANDS }, `commands: ${PEER_COMMANDS}`);
        default:
          throw new InvalidArgumentError(`unknown command "${cmd}"; commands: ${PEER_COMMANDS}`);
      }
    } catch (err) {
      if (!(err instanceof IvshmError)) throw err;
      const code = err.code;
      this.print('error', { command: cmd, code, message: err.message }, `error: ${err.message}`);
    }
  }
}

function arg(words: string[], i: number, name: string): string {
  const w = words[i];
  if (w === undefined) throw new InvalidArgumentError(`missing ${name}; usage: ${PEER_COMMANDS}`);
  return w;
}
