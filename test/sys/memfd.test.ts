// The kernel facts the isolation model rests on (docs/design.md §2, §3),
// checked on the machine the tests run on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addSeals, closeFd, getSeals, mapShared, memfdCreate, readOnlyFd, SEAL, SYS, tryMapShared, tryOpen, tryProtect, tryTruncate, writeFd, errnoName } from '../../src/sys/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { MAX_SECTION_SIZE } from '../../src/units.js';

test('memfd: zero-filled, sealable, shared between mappings', () => {
  const fd = memfdCreate('ivshm:test:sys', 8192);
  const a = mapShared(fd, 8192, true, 'a');
  const b = mapShared(fd, 8192, true, 'b');
  assert.equal(Buffer.from(a.buffer).readUInt32LE(4096), 0);
  Buffer.from(a.buffer).write('shared', 100);
  assert.equal(Buffer.from(b.buffer).toString('utf8', 100, 106), 'shared');
  addSeals(fd, SEAL.SHRINK | SEAL.GROW);
  assert.equal(getSeals(fd) & (SEAL.SHRINK | SEAL.GROW), SEAL.SHRINK | SEAL.GROW);
  assert.equal(errnoName(tryTruncate(fd, 0)), 'EPERM');
  a.unmap();
  b.unmap();
  closeFd(fd);
});

test('F_SEAL_FUTURE_WRITE keeps the existing writable mapping and refuses every new write route', () => {
  const fd = memfdCreate('ivshm:test:future', 4096);
  const owner = mapShared(fd, 4096, true, 'owner');
  addSeals(fd, SEAL.FUTURE_WRITE);
  Buffer.from(owner.buffer).write('still writable', 0);
  const ro = readOnlyFd(fd);
  const reopened = tryOpen(`/proc/self/fd/${ro}`, SYS.O_RDWR);
  assert.equal(reopened.errno, 0, 'the inode allows a read-write reopen; the seal is what protects');
  assert.equal(errnoName(tryMapShared(reopened.fd, 4096, SYS.PROT_READ | SYS.PROT_WRITE)), 'EPERM');
  assert.equal(errnoName(writeFd(reopened.fd, Buffer.from('x'))), 'EPERM');
  const view = mapShared(ro, 4096, false, 'reader');
  assert.equal(errnoName(tryProtect(view, SYS.PROT_READ | SYS.PROT_WRITE)), 'EACCES');
  assert.equal(Buffer.from(view.buffer).toString('utf8', 0, 14), 'still writable');
  for (const f of [fd, ro, reopened.fd]) closeFd(f);
  view.unmap();
  owner.unmap();
});

test('a retired mapping reads zeroes instead of faulting', () => {
  const fd = memfdCreate('ivshm:test:retire', 4096);
  const m = mapShared(fd, 4096, true, 'm');
  const view = Buffer.from(m.buffer);
  view.write('data', 0);
  closeFd(fd);
  m.unmap();
  assert.equal(view.readUInt32LE(0), 0, 'private zero page after unmap');
  view.writeUInt32LE(1, 0); // writable mapping stays writable (private), no crash
});

test('mapShared refuses a section above MAX_SECTION_SIZE instead of aborting the process in koffi.view', () => {
  const fd = memfdCreate('ivshm-test-big', MAX_SECTION_SIZE + 4096);
  try {
    assert.throws(() => mapShared(fd, MAX_SECTION_SIZE + 4096, false, 'big'),
      (e: unknown) => e instanceof InvalidArgumentError && /^cannot map big: 1073745920 bytes is above the largest section size/.test(e.message));
    const m = mapShared(fd, MAX_SECTION_SIZE, false, 'max');
    assert.equal(m.buffer.byteLength, MAX_SECTION_SIZE);
    m.unmap();
  } finally {
    closeFd(fd);
  }
});
