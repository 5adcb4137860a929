// Network namespaces made and removed by name (src/sys/netns.ts): created
// with loopback up, an existing one refused (never taken over), deleted;
// names checked before any path or command is made from them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { InvalidArgumentError } from '../../src/errors.js';
import { createNetns, deleteNetns, inNetnsArgv, netnsExists } from '../../src/sys/netns.js';

test('netns: names are checked first', () => {
  for (const bad of ['../x', 'a/b', '..', '', '-x']) {
    assert.throws(() => inNetnsArgv(bad, ['true']), InvalidArgumentError, bad);
    assert.throws(() => createNetns(bad), InvalidArgumentError, bad);
    assert.throws(() => deleteNetns(bad), InvalidArgumentError, bad);
  }
  assert.deepEqual(inNetnsArgv('ns1', ['prog', 'a']), ['ip', 'netns', 'exec', 'ns1', 'prog', 'a']);
});

test('netns: create (loopback up), refuse an existing one, delete (root)', { timeout: 30_000 }, (t) => {
  if (process.getuid?.() !== 0) return t.skip('creating network namespaces needs root');
  const name = `ivshm-t-ns${process.pid}`;
  try {
    createNetns(name);
    assert.equal(netnsExists(name), true);
    assert.match(execFileSync('ip', ['-n', name, 'link', 'show', 'lo'], { encoding: 'utf8' }), /[<,]UP[,>]/);
    assert.throws(() => createNetns(name), (e: unknown) => e instanceof InvalidArgumentError && /already exists/.test(e.message));
    assert.equal(netnsExists(name), true, 'the refusal left it as it was');
    deleteNetns(name);
    assert.equal(netnsExists(name), false);
  } finally {
    if (netnsExists(name)) deleteNetns(name);
  }
});
