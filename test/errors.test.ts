// One error base class with stable codes; instanceof works across copies (Symbol.for brand).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClosedError, ConfigError, IvshmError, OsError, PeerGoneError, PeerViolationError, ProtocolError, RefusedError } from '../src/errors.js';

test('every error family has its code and is an IvshmError', () => {
  const cases: [IvshmError, string][] = [
    [new ConfigError('x'), 'IVSHM_ERR_CONFIG'],
    [new OsError('mmap', 12, 'x'), 'IVSHM_ERR_OS'],
    [new ProtocolError('x'), 'IVSHM_ERR_PROTOCOL'],
    [new PeerViolationError('bad-index', 'x'), 'IVSHM_ERR_PEER_VIOLATION'],
    [new RefusedError('x'), 'IVSHM_ERR_REFUSED'],
    [new PeerGoneError('x'), 'IVSHM_ERR_PEER_GONE'],
    [new ClosedError('x'), 'IVSHM_ERR_CLOSED'],
  ];
  for (const [e, code] of cases) {
    assert.equal(e.code, code);
    assert.ok(e instanceof IvshmError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, e.constructor.name);
  }
  assert.ok(!(new ConfigError('x') instanceof ProtocolError));
  assert.ok(!(new Error('x') instanceof IvshmError));
});

test('instanceof works for an error made by a duplicated copy of the package', async () => {
  // A second copy of the module, as two versions in one node_modules tree would load.
  const copy = (await import(`../src/errors.js?copy=${Date.now()}`)) as typeof import('../src/errors.js');
  const foreign = new copy.RefusedError('from the other copy');
  assert.notEqual(copy.RefusedError, RefusedError);
  assert.ok(foreign instanceof RefusedError);
  assert.ok(foreign instanceof IvshmError);
  assert.ok(!(foreign instanceof ConfigError));
});
