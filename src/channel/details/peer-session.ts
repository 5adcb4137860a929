// Following one remote peer's section (docs/spec-channel.md §6): its STATE
// word says which session is live, its header must describe the same
// session with the role we expect, and a session that broke the protocol is
// ignored until the peer starts another. Channel (its peer) and Subscriber
// (its publisher) both look through this.
import type { IvshmemEndpoint } from '../../ivshmem/endpoint.js';
import { PEER_OUTPUT_VIEW } from '../../ivshmem/endpoint.js';
import { CH_STATE_PHASE_MASK, CH_STATE_READY, readPeerHeader, words, type PeerHeader } from '../layout.js';

/**
 * What look() found: `down` the attached session ended (downReason says
 * why); `new` a session to attach to (header); `same` the attached one;
 * `bad-header` a section that is not (yet) a valid channel section; `none`
 * nothing usable yet.
 */
export type Look = 'down' | 'new' | 'same' | 'bad-header' | 'none';

export class PeerSession {
  /** The peer's section, read-only, and its words; null when not mapped. */
  view: Uint8Array | null = null;
  pw: Int32Array | null = null;
  /** The session we are attached to (0: none). The owner sets it when it attaches. */
  session = 0;
  /** A session that broke the protocol: ignored until the peer starts another. */
  brokenSession = 0;
  /** Set by look() when it returns 'new'. */
  header: PeerHeader | null = null;
  /** Set by look() when it returns 'down'. */
  downReason = '';

  constructor(
    private readonly ep: IvshmemEndpoint,
    readonly peer: number,
    private readonly role: number,
    /** "peer" or "publisher", for reasons. */
    private readonly noun: string,
    /** Called when the mapping is dropped: whatever was read through it must go too. */
    private readonly onDrop: () => void,
  ) {}

  /** Forget the mapping (replaced or unmapped): it is never touched again. */
  drop(): void {
    this.view = null;
    this.pw = null;
    this.onDrop();
  }

  /** Read the peer's STATE and header once each and say what changed. */
  look(): Look {
    const ep = this.ep;
    const st = ep.peerState(this.peer) >>> 0;
    if (st === 0 || (st & CH_STATE_PHASE_MASK) !== CH_STATE_READY) {
      if (!this.session) return 'none';
      this.downReason = st === 0 ? `${this.noun} reset its state` : `${this.noun} state 0x${st.toString(16)}`;
      return 'down';
    }
    const view = ep[PEER_OUTPUT_VIEW](this.peer);
    if (!view) return 'none';
    if (view !== this.view) {
      this.drop();
      this.view = view;
      this.pw = words(view, `output section of peer ${this.peer}`);
    }
    const hdr = readPeerHeader(this.pw!, view.byteLength, ep.maxPeers);
    if (typeof hdr === 'string') return 'bad-header';
    // Mid-reset (STATE and header disagree), another role, or latched broken: wait.
    if (hdr.session !== ((st & ~CH_STATE_PHASE_MASK) >>> 0) || hdr.role !== this.role || hdr.session === this.brokenSession) return 'none';
    if (hdr.session === this.session) return 'same';
    this.header = hdr;
    return 'new';
  }
}
