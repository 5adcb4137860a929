// A child that dies with its parent: the kernel sends it SIGKILL when the
// process that started it exits (PR_SET_PDEATHSIG, which survives exec). Set
// through util-linux `setpriv`, so it applies to any program, not only Node.
import fs from 'node:fs';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));

/** Whether `withParentDeathSignal` can arrange it here (util-linux installed). */
export const parentDeathSignalAvailable = SETPRIV !== undefined;

/** The command line that runs `argv` so the kernel kills it when its parent dies. */
export function withParentDeathSignal(argv: readonly string[]): string[] {
  return SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', '--', ...argv] : [...argv];
}
