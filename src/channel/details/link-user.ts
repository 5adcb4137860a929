// What Channel, Publisher and Subscriber share: an endpoint of a link in the
// user protocol range, this peer's own section (section.ts), a pump for the
// wait mode (src/ivshmem/wait.ts), the endpoint's events, a watchdog, and
// the rule for exceptions thrown by the user's listeners. Each subclass says
// what its work is and how it reacts to a peer's state.
import { EventEmitter } from 'node:events';
import { InvalidArgumentError } from '../../errors.js';
import type { EndpointEvents, InterruptEvent, IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import { checkWaitOptions, Pump, type WaitMode, type WaitOptions } from '../../ivshmem/wait.js';
import { IVSHM_PROTO_USER_MAX, IVSHM_PROTO_USER_MIN } from '../layout.js';
import { OwnSection } from './section.js';

export interface LinkUserOptions extends WaitOptions {
  /** Doorbell vector; default 1 when the link has 2+ vectors, else 0. */
  vector?: number;
  /** Period of the safety re-check of state and indices (a lost doorbell costs at most this), ms. Default 250. */
  watchdogMs?: number;
}

/** The other peer named by an option, defaulting to the other one of a 2-peer link. */
export function otherPeer(ep: IvshmemEndpoint, peer: number | undefined, option: string, what: string): number {
  const p = peer ?? (ep.maxPeers === 2 ? 1 - ep.id : -1);
  if (!Number.isInteger(p) || p < 0 || p >= ep.maxPeers || p === ep.id) {
    throw new InvalidArgumentError(`${what}: option ${option} must name another peer 0..${ep.maxPeers - 1} (the link has ${ep.maxPeers} peers)`);
  }
  return p;
}

type Listener = (...args: never[]) => void;
// EventEmitter's own key and argument types (not exported by @types/node).
type Key<K, T> = T extends [never] ? string | symbol : K | keyof T;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Args<K, T> = T extends [never] ? [...args: any[]] : K extends keyof T ? T[K] : never;

/** Every object of this layer counts the exceptions its listeners threw. */
export interface ListenerErrorCounter {
  listenerErrors: number;
}

export abstract class LinkUser<Events extends Record<keyof Events, unknown[]>> extends EventEmitter<Events> {
  readonly endpoint: IvshmemEndpoint;
  readonly vector: number;
  readonly mode: WaitMode;
  closed = false;
  abstract readonly counters: ListenerErrorCounter;
  protected readonly sec: OwnSection;
  protected readonly pump: Pump;
  /** Names this object in messages ("channel on peer 0 of link demo"). */
  protected readonly what: string;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly endpointListeners: Array<[keyof EndpointEvents, Listener]>;
  private readonly watchdogMs: number;

  constructor(endpoint: IvshmemEndpoint, opts: LinkUserOptions, what: string) {
    // An async listener's rejection comes back to listenerFailed() too.
    super({ captureRejections: true });
    if (endpoint.protocol < IVSHM_PROTO_USER_MIN || endpoint.protocol > IVSHM_PROTO_USER_MAX) {
      throw new InvalidArgumentError(
        `${what}: link protocol 0x${endpoint.protocol.toString(16)} is not in the user range 0x4000-0x7fff; give the link a protocol in that range, e.g. IVSHM_PROTO_CHANNEL (0x4348)`);
    }
    const vector = opts.vector ?? (endpoint.vectors > 1 ? 1 : 0);
    if (!Number.isInteger(vector) || vector < 0 || vector >= endpoint.vectors) {
      throw new InvalidArgumentError(`${what}: vector ${vector} must be 0..${endpoint.vectors - 1}`);
    }
    const wait = checkWaitOptions(opts, what);
    this.what = what;
    this.endpoint = endpoint;
    this.vector = vector;
    this.mode = wait.mode;
    this.sec = OwnSection.of(endpoint);
    this.pump = new Pump({ work: () => this.work(), probe: () => this.probe(), arm: (on) => this.arm(on) }, wait);
    this.endpointListeners = [
      [
        'interrupt',
        (e: InterruptEvent) => {
          if (e.vector === this.vector && this.rings(e.from)) this.pump.kick(true);
        },
      ],
      ['state', (e: { peer: number }) => this.peerState(e.peer)],
      ['peer-joined', (e: { peer: number }) => this.peerJoined(e.peer)],
      ['peer-gone', (e: { peer: number; reason: string }) => this.peerGone(e.peer, e.reason)],
      ['close', (e: { reason: string }) => this.shutdown(`link closed: ${e.reason}`, true)],
    ];
    this.watchdogMs = opts.watchdogMs ?? 250;
  }

  /**
   * Emit an event to the user's listeners. Whatever a listener throws stays
   * with the user: it is never rethrown into this layer's internals (a pump
   * turn, a doorbell, another peer's state change), where it would leave a
   * batch half done or end the process. It goes to the 'error' listeners if
   * there are any, else to a process warning, and is counted in
   * `counters.listenerErrors`; the object carries on.
   */
  override emit<K>(event: Key<K, Events>, ...args: Args<K, Events>): boolean {
    try {
      return super.emit(event, ...args);
    } catch (err) {
      if (event === 'error') this.warn(err, 'error');
      else this.listenerFailed(err, event as string | symbol);
      return true;
    }
  }

  /** EventEmitter's captureRejections hook: an async listener's rejection. */
  override [EventEmitter.captureRejectionSymbol]<K>(err: Error, event: Key<K, Events>, ..._args: Args<K, Events>): void {
    this.listenerFailed(err, event as string | symbol);
  }

  private listenerFailed(err: unknown, event: string | symbol): void {
    this.counters.listenerErrors++;
    if (event !== 'error' && (this as EventEmitter).listenerCount('error') > 0) {
      // emit() catches what an 'error' listener throws in turn (a warning).
      (this as EventEmitter).emit('error', err);
      return;
    }
    this.warn(err, event);
  }

  private warn(err: unknown, event: string | symbol): void {
    process.emitWarning(err instanceof Error ? err : String(err), {
      type: 'IvshmListenerError',
      detail: `thrown by a '${String(event)}' listener of the ${this.what}; it carries on. Listen for 'error' to handle such exceptions.`,
    });
  }

  /**
   * Subscribe to the endpoint's events, start the watchdog and run `first`
   * on the next turn. Subclasses call it last in their constructor: a handler
   * must never see a half-built object. Events are never emitted from the
   * constructor (the peer may attach while it runs, in another process), so
   * listeners added right after it see them. A listener for
   * `deliveryEvent` kicks the pump (delivery may have waited for one).
   */
  protected listen(deliveryEvent: string | null, first: () => void): void {
    for (const [name, fn] of this.endpointListeners) this.endpoint.on(name, fn as never);
    this.watchdog = setInterval(() => {
      this.recheck();
      this.pump.kick();
    }, this.watchdogMs);
    this.watchdog.unref();
    (this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (name === deliveryEvent) this.pump.kick();
    });
    setImmediate(first);
  }

  /** Pending work, bounded; true if anything happened. */
  protected abstract work(): boolean;
  /** Cheap check: is there something for work()? */
  protected abstract probe(): boolean;
  /** Publish (true) or withdraw (false) wake requests; returns probe() after arming. */
  protected abstract arm(on: boolean): boolean;
  /** Is `from` a peer whose doorbell concerns us? */
  protected abstract rings(from: number): boolean;
  /** A peer's STATE changed. */
  protected abstract peerState(peer: number): void;
  /** A peer (re)joined: its old mapping is gone. */
  protected abstract peerJoined(peer: number): void;
  /** A peer left or died. */
  protected abstract peerGone(peer: number, reason: string): void;
  /** The watchdog's periodic re-check (a lost doorbell costs at most one period). */
  protected abstract recheck(): void;
  /** Release everything; `linkGone` when the endpoint itself is closing. */
  protected abstract shutdown(reason: string, linkGone: boolean): void;

  /**
   * Stop the pump, the watchdog and the endpoint's events. Returns false if
   * already closed, so shutdown() runs once.
   */
  protected detach(): boolean {
    if (this.closed) return false;
    this.closed = true;
    this.pump.stop();
    if (this.watchdog) clearInterval(this.watchdog);
    for (const [name, fn] of this.endpointListeners) this.endpoint.off(name, fn as never);
    return true;
  }
}

/**
 * A LinkUser that follows one remote peer (Channel: its peer; Subscriber: its
 * publisher): doorbells, state changes, re-joins and departures of that peer
 * all come down to "look again" or "the peer is gone".
 */
export abstract class OnePeerUser<Events extends Record<keyof Events, unknown[]>> extends LinkUser<Events> {
  /** The peer this object follows. */
  protected abstract readonly remote: number;
  /** Look at the remote's STATE and header; attach to a new session. */
  protected abstract sync(): void;
  /** Forget the remote's mapping (it was replaced or unmapped). */
  protected abstract dropView(): void;
  /** The remote's session ended. */
  protected abstract lost(reason: string): void;

  protected rings(from: number): boolean {
    return from === this.remote;
  }

  protected peerState(peer: number): void {
    if (peer !== this.remote) return;
    this.sync();
    this.pump.kick();
  }

  protected peerJoined(peer: number): void {
    // A re-join replaces the peer's mapping: the old view must not be touched again.
    if (peer !== this.remote) return;
    this.dropView();
    this.sync();
    this.pump.kick();
  }

  protected peerGone(peer: number, reason: string): void {
    if (peer !== this.remote) return;
    this.dropView();
    this.lost(`peer gone: ${reason}`);
  }
}
