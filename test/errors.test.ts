// One error class per code; instanceof works across copies (Symbol.for brand);
// the library throws nothing but these.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BusyError,
  ClosedError,
  ConfigError,
  ERROR_CLASSES,
  InvalidArgumentError,
  IvshmError,
  NotSupportedError,
  OsError,
  PeerGoneError,
  PeerViolationError,
  PermissionError,
  ProtocolError,
  RefusedError,
  TimeoutError,
} from '../src/errors.js';

test('every class has its own code, its own name, and is an IvshmError', () => {
  const cases: [IvshmError, string][] = [
    [new ConfigError('x'), 'IVSHM_ERR_CONFIG'],
    [new InvalidArgumentError('x'), 'IVSHM_ERR_INVALID_ARGUMENT'],
    [new OsError('mmap', 12, 'x'), 'IVSHM_ERR_OS'],
    [new PermissionError('open', 13, 'x'), 'IVSHM_ERR_PERMISSION'],
    [new NotSupportedError('x'), 'IVSHM_ERR_NOT_SUPPORTED'],
    [new ProtocolError('x'), 'IVSHM_ERR_PROTOCOL'],
    [new PeerViolationError('bad-index', 'x'), 'IVSHM_ERR_PEER_VIOLATION'],
    [new RefusedError('x'), 'IVSHM_ERR_REFUSED'],
    [new PeerGoneError('x'), 'IVSHM_ERR_PEER_GONE'],
    [new ClosedError('x'), 'IVSHM_ERR_CLOSED'],
    [new TimeoutError('x'), 'IVSHM_ERR_TIMEOUT'],
    [new BusyError('x'), 'IVSHM_ERR_BUSY'],
  ];
  assert.deepEqual(cases.map(([, c]) => c).sort(), Object.keys(ERROR_CLASSES).sort(), 'one case per code');
  for (const [e, code] of cases) {
    assert.equal(e.code, code);
    assert.ok(e instanceof IvshmError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, e.constructor.name);
    assert.ok(e instanceof ERROR_CLASSES[code as keyof typeof ERROR_CLASSES], `${code} maps to ${e.name}`);
    for (const [other, cls] of Object.entries(ERROR_CLASSES)) {
      if (other === code || (code === 'IVSHM_ERR_PERMISSION' && other === 'IVSHM_ERR_OS')) continue;
      assert.ok(!(e instanceof cls), `${e.name} is not a ${cls.name}`);
    }
  }
  // A permission failure is still an OS failure, with errno and syscall.
  const p = new PermissionError('open', 13, 'x');
  assert.ok(p instanceof OsError);
  assert.equal(p.errno, 13);
  assert.equal(p.syscall, 'open');
  assert.ok(!(new OsError('open', 5, 'x') instanceof PermissionError));
  assert.ok(!(new Error('x') instanceof IvshmError));
  assert.ok(!({ code: 'IVSHM_ERR_CONFIG' } instanceof ConfigError));
});

test('instanceof works for an error made by a duplicated copy of the package', async () => {
  // A second copy of the module, as two versions in one node_modules tree would load.
  const copy = (await import(`../src/errors.js?copy=${Date.now()}`)) as typeof import('../src/errors.js');
  const foreign = new copy.RefusedError('from the other copy');
  assert.notEqual(copy.RefusedError, RefusedError);
  assert.ok(foreign instanceof RefusedError);
  assert.ok(foreign instanceof IvshmError);
  assert.ok(!(foreign instanceof ConfigError));
  assert.ok(new copy.PermissionError('open', 1, 'x') instanceof OsError);
});

test('library code throws only IvshmError subclasses', () => {
  // The compiled test lives in dist/test; the sources are beside dist.
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.ts') ? [path.join(d, e.name)] : []));
  const allowed = new Set(Object.values(ERROR_CLASSES).map((c) => c.name));
  const bad: string[] = [];
  for (const f of walk(root)) {
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      for (const m of line.matchAll(/\bnew ([A-Z]\w*Error)\(/g)) {
        if (!allowed.has(m[1]!)) bad.push(`${path.relative(root, f)}:${i + 1}: new ${m[1]}`);
      }
    });
  }
  assert.deepEqual(bad, [], 'throw one of the IvshmError classes (src/errors.ts) instead');
});
