// The MAC of a net link member's TAP device when none is configured
// (docs/spec-net.md §11): derived from the link name and the peer ID, the two
// facts both `ivshm net` (from the broker's INIT) and `ivshm up` (from the
// system file) have, so the same member gets the same MAC whichever starts
// it, and keeps it across restarts (a random MAC per start breaks neighbour
// caches and DHCP leases).
import { createHash } from 'node:crypto';

/** Stable, locally administered, unicast MAC for peer `id` of link `link`. */
export function deriveMac(link: string, id: number): string {
  const h = createHash('sha256').update(`ivshm-net\0${link}\0${id}`).digest();
  h[0] = (h[0]! & 0xfc) | 0x02; // locally administered, unicast
  return Array.from(h.subarray(0, 6), (x) => x.toString(16).padStart(2, '0')).join(':');
}
