// One line per subcommand; each module exports register(program).
import type { Command } from 'commander';
import { register as registerCheck } from './check.js';

export function registerCommands(program: Command): void {
  void program;
  registerCheck(program);
}
