// Tests of the unprivileged path run code as uid 65534 (nobody). That works
// only when nobody can read the checkout: a clone inside a 0700 directory
// (mktemp -d, /root) is out of its reach. .ci/run opens the checkout for
// reading; elsewhere such a test skips with this reason.
import { spawnSync } from 'node:child_process';

const DIST = new URL('../../', import.meta.url).pathname;
let cached: string | null | undefined;

/** null when uid 65534 can load the compiled code, else why it cannot. */
export function unprivilegedBlocked(): string | null {
  if (cached !== undefined) return cached;
  const r = spawnSync(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(DIST + 'src/index.js')}, 4)`], { uid: 65534, gid: 65534, encoding: 'utf8' });
  cached =
    r.status === 0
      ? null
      : `uid 65534 cannot read the checkout at ${DIST} (a parent directory is not world-searchable); ` +
        'make it readable (chmod o+rx on the path, as .ci/run does) to run the unprivileged-path test';
  return cached;
}
