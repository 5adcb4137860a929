// TAP devices and namespaces for real (src/sys/tap.ts, src/sys/netns.ts):
// create a TAP in a fresh namespace, configure it, move frames both ways,
// toggle carrier, and have it deleted under us. Needs root; skips otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openTap, parseMac, checkIfName, checkCidr, EBADFD, type TapDevice } from '../../src/sys/tap.js';
import { withNetns } from '../../src/sys/netns.js';
import { IvshmError } from '../../src/errors.js';
import { ip, ipTry, linkLine, makeNetns, skipUnlessPrivileged, uniqueTag } from '../fixtures/tap-netns.js';
import { unprivilegedBlocked } from '../helpers/unprivileged.js';
import { until } from '../helpers/wait.js';

const PEER_MAC = Buffer.from([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]);

function arpRequest(senderIp: number[], targetIp: number[]): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  PEER_MAC.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // htype Ethernet
  f.writeUInt16BE(0x0800, 16); // ptype IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  PEER_MAC.copy(f, 22);
  Buffer.from(senderIp).copy(f, 28);
  Buffer.from(targetIp).copy(f, 38);
  return f;
}

/** Read frames until `match` accepts one (the kernel also sends IPv6 noise). */
async function readUntil(tap: TapDevice, match: (f: Buffer) => boolean): Promise<Buffer> {
  const buf = Buffer.alloc(70000);
  return new Promise((resolve, reject) => {
    const w = tap.watch(() => {
      for (;;) {
        const n = tap.read(buf);
        if (n < 0) {
          w.close();
          reject(new Error(`read failed: errno ${-n}`));
          return;
        }
        if (n === 0) return;
        const f = Buffer.from(buf.subarray(0, n));
        if (match(f)) {
          w.close();
          resolve(f);
          return;
        }
      }
    });
  });
}

test('argument checks name what is wrong', () => {
  assert.throws(() => checkIfName('this-name-is-too-long'), /1-15 letters/);
  assert.throws(() => checkIfName('a/b'), /not a valid interface name/);
  assert.throws(() => parseMac('01:00:00:00:00:01'), /multicast/);
  assert.throws(() => parseMac('02:00:00:00:00'), /not of the form/);
  assert.deepEqual([...parseMac('02:0A:0b:0c:0d:0e')], [2, 10, 11, 12, 13, 14]);
  assert.equal(checkCidr('10.0.0.1/24').family, 4);
  assert.equal(checkCidr('fd00::1/64').family, 6);
  assert.throws(() => checkCidr('10.0.0.300/24'), /ADDRESS\/PREFIX/);
  assert.throws(() => checkCidr('10.0.0.1'), /ADDRESS\/PREFIX/);
  assert.throws(() => withNetns('no/such', () => 0), /not a valid network namespace name/);
});

test('a missing namespace is a clear error', (t) => {
  if (skipUnlessPrivileged(t)) return;
  assert.throws(() => openTap({ name: 'ivx0', netns: `nonexistent${uniqueTag()}` }),
    (e: unknown) => e instanceof IvshmError && /does not exist.*ip netns add/.test(e.message));
});

test('TAP in a namespace: MTU, MAC, address, up, frames both ways, carrier, close removes it', { timeout: 20000 }, async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const ns = makeNetns(t);
  const name = `ivt${uniqueTag()}`;
  const tap = openTap({ name, netns: ns, mtu: 16384, mac: '02:00:00:00:01:01' });
  t.after(() => tap.close());
  tap.addAddress('10.77.0.1/24');
  assert.equal(tap.created, true);
  const info = tap.info();
  assert.equal(info.mtu, 16384);
  assert.equal(info.mac, '02:00:00:00:01:01');
  assert.equal(info.up, true);
  let line = linkLine(ns, name);
  assert.match(line, /NO-CARRIER/, 'carrier starts off: the link decides');
  assert.match(line, /mtu 16384/);
  assert.match(ip(['-n', ns, '-o', 'addr', 'show', 'dev', name]), /10\.77\.0\.1\/24/);
  // Not visible outside its namespace.
  assert.equal(ipTry(['link', 'show', 'dev', name]), false);

  tap.setCarrier(true);
  await until(() => /LOWER_UP/.test(linkLine(ns, name)), 'LOWER_UP');

  // Write an ARP request into the namespace; read the kernel's reply.
  const replyP = readUntil(tap, (f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2);
  assert.equal(tap.write(arpRequest([10, 77, 0, 2], [10, 77, 0, 1])), 0);
  const reply = await replyP;
  assert.deepEqual([...reply.subarray(0, 6)], [...PEER_MAC], 'reply goes to the asker');
  assert.deepEqual([...reply.subarray(6, 12)], [2, 0, 0, 0, 1, 1], 'reply comes from our MAC');
  assert.deepEqual([...reply.subarray(28, 32)], [10, 77, 0, 1]);

  tap.setCarrier(false);
  await until(() => /NO-CARRIER/.test(linkLine(ns, name)), 'NO-CARRIER');
  tap.setMtu(1500);
  assert.equal(tap.mtu, 1500);

  tap.close();
  tap.close(); // idempotent
  line = linkLine(ns, name);
  assert.equal(line, '', 'a TAP we created vanishes with its fd');
});

test('a TAP deleted under us: read reports EBADFD, the watch fires, ioctls say it vanished', { timeout: 20000 }, async (t) => {
  if (skipUnlessPrivileged(t)) return;
  const ns = makeNetns(t);
  const name = `ivt${uniqueTag()}`;
  const tap = openTap({ name, netns: ns });
  t.after(() => tap.close());
  const fired = new Promise<void>((resolve) => {
    const w = tap.watch(() => {
      const n = tap.read(Buffer.alloc(2048));
      if (n < 0) {
        w.close();
        assert.equal(-n, EBADFD);
        resolve();
      }
    });
  });
  ip(['-n', ns, 'link', 'delete', name]);
  await fired;
  assert.throws(() => tap.setCarrier(true), /no longer exists/);
  assert.throws(() => tap.mtu, /no longer exists/);
  tap.close();
});

test('attaching to a persistent TAP keeps it and removes only what we added', { timeout: 20000 }, (t) => {
  if (skipUnlessPrivileged(t)) return;
  const ns = makeNetns(t);
  const name = `ivp${uniqueTag()}`;
  ip(['-n', ns, 'tuntap', 'add', 'mode', 'tap', 'name', name]);
  const tap = openTap({ name, netns: ns, mtu: 9000 });
  t.after(() => tap.close());
  assert.equal(tap.created, false);
  tap.addAddress('10.78.0.1/24');
  assert.throws(() => openTap({ name, netns: ns }), /already attached to another process/);
  tap.close();
  assert.notEqual(linkLine(ns, name), '', 'the persistent TAP stays');
  assert.doesNotMatch(ip(['-n', ns, '-o', 'addr', 'show', 'dev', name]), /10\.78\.0\.1/);
  // A name taken by a non-TAP interface.
  const other = `ivd${uniqueTag()}`;
  ip(['-n', ns, 'link', 'add', other, 'type', 'veth', 'peer', 'name', `${other}p`]);
  assert.throws(() => openTap({ name: other, netns: ns }), /is not a TAP device/);
});

test('without privileges: a clear error saying what is missing', { timeout: 20000 }, (t) => {
  if (skipUnlessPrivileged(t)) return;
  const blocked = unprivilegedBlocked();
  if (blocked) return t.skip(blocked);
  const script = fileURLToPath(new URL('../fixtures/tap-open.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, `ivu${uniqueTag()}`], { uid: 65534, gid: 65534, encoding: 'utf8' });
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; code?: string; message?: string };
  assert.equal(out.ok, false, r.stdout + r.stderr);
  assert.equal(out.code, 'IVSHM_ERR_PERMISSION');
  assert.match(out.message ?? '', /root or CAP_NET_ADMIN/);
});
