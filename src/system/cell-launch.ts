// The one place where the command line of a supervised process is built:
// its program and arguments, entered into its network namespace, and tied to
// the supervisor's life (docs/supervisor.md, "Cells"). Whatever else wraps a
// cell before its program starts is added here, in this order.
import { inNetnsArgv } from '../sys/netns.js';
import { withParentDeathSignal } from '../sys/parent-death.js';

export interface LaunchSpec {
  /** The program; `node` means the Node binary running the supervisor. */
  command: string;
  args: readonly string[];
  /** Network namespace to run in. */
  netns?: string;
}

/** The program to run, resolved (`node` is this Node binary). */
export const programOf = (spec: LaunchSpec): string => (spec.command === 'node' ? process.execPath : spec.command);

/** The full command line (argv[0] is the file to execute). */
export function launchArgv(spec: LaunchSpec): [string, ...string[]] {
  let argv = [programOf(spec), ...spec.args];
  if (spec.netns) argv = inNetnsArgv(spec.netns, argv);
  // If the supervisor is killed outright (SIGKILL: no cleanup code runs),
  // the kernel kills the cell too.
  argv = withParentDeathSignal(argv);
  return argv as [string, ...string[]];
}
