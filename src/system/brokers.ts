// One broker per link (the hypervisor's part of a link, docs/supervisor.md,
// "Links"): it owns the link's shared memory and admits each member only with
// the ID and the token the supervisor issued to it.
import { randomBytes } from 'node:crypto';
import { Broker } from '../ivshmem/broker.js';
import type { CellLinkEndpoint } from '../ivshmem/cell-links.js';
import type { ResolvedLink } from './check.js';

export class LinkBroker {
  readonly broker: Broker;
  /** Member ID -> the token that admits it. */
  private readonly tokens = new Map<number, string>();

  /**
   * @param warn called with the broker's warnings (peers that misbehave or
   * vanish mid-message).
   */
  constructor(
    readonly config: ResolvedLink,
    readonly socket: string,
    warn: (message: string) => void,
  ) {
    for (const m of config.members) this.tokens.set(m.id, randomBytes(16).toString('hex'));
    this.broker = new Broker({
      socket,
      name: config.name,
      peers: config.peers,
      vectors: config.vectors,
      protocol: config.protocol,
      outputSize: config.outputSize,
      rwSize: config.rwSize,
      stateSize: config.stateSize,
      tokens: Object.fromEntries(this.tokens),
    });
    this.broker.on('log', (e) => {
      if (e.level === 'warn') warn(e.message);
    });
  }

  start(): Promise<void> {
    return this.broker.start();
  }

  stop(): Promise<void> {
    return this.broker.stop();
  }

  isMember(cell: string): boolean {
    return this.config.members.some((m) => m.cell === cell);
  }

  /** What member cell `cell` needs to join this link (its IVSHM_LINKS entry). */
  endpoint(cell: string): CellLinkEndpoint {
    const m = this.config.members.find((x) => x.cell === cell)!;
    return { socket: this.socket, id: m.id, token: this.tokens.get(m.id)!, kind: this.config.kind, protocol: this.config.protocol };
  }
}
