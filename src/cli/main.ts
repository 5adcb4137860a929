#!/usr/bin/env node
// The `ivshm` command: thin; each subcommand lives in its own file and is
// listed in commands.ts.
import { Command, CommanderError } from 'commander';
import { IvshmError } from '../errors.js';
import { registerCommands } from './commands.js';

const program = new Command('ivshm')
  .description('Jailhouse ivshmem 2.0 links, ivshmem-net and channels between Linux processes')
  .showHelpAfterError()
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (err instanceof IvshmError) {
    console.error(`ivshm: ${err.message} [${err.code}]`);
    process.exit(2);
  }
  throw err;
}
