// One line per subcommand; each module exports register(program).
import type { Command } from 'commander';
import { register as broker } from './broker.js';
import { register as peer } from './peer.js';

export function registerCommands(program: Command): void {
  broker(program);
  peer(program);
}
