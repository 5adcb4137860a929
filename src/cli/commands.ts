// One line per subcommand; each module exports register(program).
import type { Command } from 'commander';
import { register as broker } from './broker.js';
import { register as demo } from './demo.js';
import { register as peer } from './peer.js';
import { register as check } from './check.js';
import { register as up } from './up.js';
import { register as status } from './status.js';
import { register as cell } from './cell.js';
import { register as qemuServer } from './qemu-server.js';
import { register as net } from './net.js';

export function registerCommands(program: Command): void {
  broker(program);
  demo(program);
  peer(program);
  check(program);
  up(program);
  status(program);
  cell(program);
  qemuServer(program);
  net(program);
}
