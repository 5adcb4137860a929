// `ivshm broker` as a user types it: the README's own command line, and the
// largest section at the CLI (docs/spec.md §1.5).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import { CLI, PeerProc, stopAllPeers, tmpSocket } from '../helpers/peer-proc.js';

after(stopAllPeers);

const broker = (socket: string, ...args: string[]): Promise<PeerProc> =>
  PeerProc.start(socket, { args: ['broker', '--socket', socket, '--json', ...args], wait: false });

const listening = (b: PeerProc) => b.waitFor((e) => /listening on/.test(String(e.message)), 'broker listening');

test("the README's net broker: --output-size 0x7F000 (hex, upper case) is accepted", async () => {
  const socket = tmpSocket('cli-broker');
  const b = await broker(socket, '--protocol', '1', '--peers', '2', '--vectors', '2', '--output-size', '0x7F000');
  const line = await listening(b);
  assert.match(String(line.message), /protocol 0x0001, state 4096 B, rw 0 B, output 520192 B per peer/);
  await b.stop();
  assert.equal(b.child.exitCode, 0);
});

test('sections above 1 GiB are refused at the command line with the flag named, exit 2', () => {
  for (const [flag, value, shown] of [['--state-size', '8G', 8 * 2 ** 30], ['--output-size', '8G', 8 * 2 ** 30], ['--rw-size', '1048577K', 2 ** 30 + 4096]] as const) {
    const args = ['broker', '--socket', tmpSocket('cli-broker'), '--peers', '2', '--output-size', '4K', flag, value];
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 2, `${flag} ${value}: ${r.stderr}`);
    assert.equal(r.stderr.trim(), `ivshm: ${flag}: ${shown} bytes is above the largest section size, 1 GiB (1073741824 bytes) [IVSHM_ERR_INVALID_ARGUMENT]`);
  }
});

test('1 GiB sections (the largest) start and a peer joins and maps them', async () => {
  const socket = tmpSocket('cli-broker');
  const b = await broker(socket, '--peers', '2', '--output-size', '1G', '--state-size', '1G', '--rw-size', '1G');
  await listening(b);
  const p = await PeerProc.start(socket);
  const dump = await p.run('dump');
  assert.equal(dump.event, 'dump', JSON.stringify(dump));
  await p.stop();
  await b.stop();
  assert.equal(b.child.exitCode, 0, b.stderr.join(''));
});

test('the CLI names its flags where the library names option keys (every problem at once)', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20000 });
  const b = run('broker', '--socket', tmpSocket('cli-broker'), '--peers', '1', '--vectors', '0', '--output-size', '12Q', '--name', '../x');
  assert.equal(b.status, 2, b.stderr);
  assert.equal(b.stderr.trim(), 'ivshm: --name: "../x" is not a valid link name: use 1-64 letters, digits, \'.\', \'_\' or \'-\', starting with a letter or digit; ' +
    '--peers: 1 is outside 2..64; --vectors: 0 is outside 1..16; ' +
    '--output-size: "12Q" is not a size; write bytes with an optional K, M or G suffix, or in hex: 64K, 1M, 0x7F000 [IVSHM_ERR_INVALID_ARGUMENT]');
  const q = run('qemu-server', '--socket', tmpSocket('cli-qemu'), '--size', 'lots', '--vectors', '65');
  assert.equal(q.status, 2, q.stderr);
  assert.match(q.stderr, /^ivshm: --size: "lots" is not a size/);
});
