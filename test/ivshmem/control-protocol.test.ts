// Byte-exact control messages (docs/spec.md) and total decoding: any input
// decodes or throws ProtocolError, nothing else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import { decodeMessage, encodeHello, encodeInit, encodePeerGone, encodePeerJoined, encodeRefused, encodeSetState, MSG } from '../../src/ivshmem/control-protocol.js';

test('golden bytes of HELLO, SET_STATE, PEER_JOINED, PEER_GONE', () => {
  assert.equal(encodeHello({ version: 1, id: -1, token: 'ab' }).toString('hex'), '01000000' + '12000000' + '4956534d' + '01000000' + 'ffffffff' + '02000000' + '6162');
  assert.equal(encodeSetState(0x01020304).toString('hex'), '03000000' + '04000000' + '04030201');
  assert.equal(encodePeerJoined(5).toString('hex'), '82000000' + '04000000' + '05000000');
  assert.equal(encodePeerGone(3, 1).toString('hex'), '83000000' + '08000000' + '03000000' + '01000000');
});

test('INIT round-trips with every field', () => {
  const init = { version: 1, id: 2, peers: 3, vectors: 16, protocol: 0x4001, stateSize: 4096, rwSize: 0x9000, outputSize: 0x7f000, name: 'net0' };
  const m = decodeMessage(encodeInit(init));
  assert.equal(m.type, MSG.INIT);
  assert.deepEqual(m.type === MSG.INIT && m.init, init);
  const r = decodeMessage(encodeRefused(4, 'full'));
  assert.deepEqual(r, { type: MSG.REFUSED, code: 4, text: 'full' });
});

test('decoding arbitrary bytes never throws anything but ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeMessage(Buffer.from(bytes));
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
    { numRuns: 2000, seed: 7 },
  );
  // Valid headers with mutated bodies, the likelier attack.
  fc.assert(
    fc.property(fc.constantFrom(0x01, 0x02, 0x03, 0x81, 0x82, 0x83, 0x84, 0x85), fc.uint8Array({ maxLength: 80 }), (type, body) => {
      const b = Buffer.alloc(8 + body.length);
      b.writeUInt32LE(type, 0);
      b.writeUInt32LE(body.length, 4);
      b.set(body, 8);
      try {
        decodeMessage(b);
      } catch (e) {
        assert.ok(e instanceof ProtocolError, String(e));
      }
    }),
    { numRuns: 2000, seed: 8 },
  );
});
