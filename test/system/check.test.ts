// ivshm check: one failing file per rule with the exact message, every
// problem at once, and the shipped examples pass (docs/system.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkSystemFile, checkSystemText } from '../../src/system/check.js';
import { demoSystemYaml } from '../../src/demo/system.js';

const root = new URL('../../../', import.meta.url).pathname;
const fixtureDir = path.join(root, 'test/fixtures');
const fixture = (name: string): string => {
  const json = path.join(fixtureDir, `system-bad-${name}.json`);
  return fs.existsSync(json) ? json : path.join(fixtureDir, `system-bad-${name}.yaml`);
};
const cli = path.join(root, 'dist/src/cli/main.js');

// [fixture, exact problems as LINE:COL: PATH: REASON]
const RULES: [string, string[]][] = [
  ['bad-address', [
    "7:26: links[0].members[0].address: \"10.0.0.1\" is not an IPv4 address with prefix length, like 10.19.0.1/24",
    "7:58: links[0].members[1].address: \"10.0.0.300/24\" is not an IPv4 address with prefix length, like 10.19.0.1/24",
  ]],
  ['bad-cell-name', [
    "3:7: cells[1].name: \"b c\" is not a valid cell name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]],
  ['bad-interface', [
    "7:15: links[0].members[0].interface: \"a-very-long-link-name\" is not a valid interface name (the default is the link name; set interface): use 1-15 letters, digits, '.', '_' or '-', starting with a letter or digit",
    "7:28: links[0].members[1].interface: \"a-very-long-link-name\" is not a valid interface name (the default is the link name; set interface): use 1-15 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]],
  ['bad-mac', [
    "7:26: links[0].members[0].mac: 01:00:5e:00:00:01 is a multicast address; the first octet must be even",
    "7:65: links[0].members[1].mac: \"02:00:00:00:00\" is not a MAC address like 02:00:00:00:00:01",
  ]],
  ['bad-system-name', [
    "1:1: name: \"../../tmp/v\" is not a valid system name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]],
  ['bad-netns', [
    "3:33: cells[1].netns: \"..\" is not a valid network namespace name: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
  ]],
  ['cell-twice', [
    "7:37: links[0].members[1].cell: cell \"a\" is already members[0] of this link; a cell joins a link once",
  ]],
  ['duplicate-cell', [
    "3:7: cells[1].name: duplicate cell name \"a\" (first at cells[0])",
  ]],
  ['duplicate-id', [
    "7:46: links[0].members[1].id: ID 1 is already taken by members[0] (cell \"a\")",
  ]],
  ['duplicate-key', [
    "3:5: not valid YAML or JSON: Map keys must be unique",
  ]],
  ['duplicate-link', [
    "8:5: links[1].name: duplicate link name \"l0\" (first at links[0])",
  ]],
  ['duplicate-mac', [
    "7:65: links[0].members[1].mac: MAC 02:00:00:00:00:01 is already used by links[0].members[0]",
  ]],
  ['id-range', [
    "7:46: links[0].members[1].id: ID 2 is outside 0..1 (the link has 2 peers)",
  ]],
  ['many-problems', [
    "6:5: links[0].vectors: 20 is outside 1..16",
    "7:37: links[0].members[1].cell: unknown cell \"x\"; the cells are a",
    "7:46: links[0].members[1].id: ID 0 is already taken by members[0] (cell \"a\")",
    "7:57: links[0].members[2].cell: cell \"a\" is already members[0] of this link; a cell joins a link once",
    "7:66: links[0].members[2].id: ID 9 is outside 0..2 (the link has 3 peers)",
  ]],
  ['json-syntax', [
    "3:39: not valid JSON: Expected double-quoted property name",
  ]],
  ['mismatch-protocol', [
    "7:53: links[0].members[1].protocol: 0x4005 differs from the link's 0x4348; all peers of a link must agree",
  ]],
  ['mismatch-vectors', [
    "8:65: links[0].members[1].vectors: 3 differs from the link's 2; all peers of a link must agree",
  ]],
  ['net-field-on-raw', [
    "7:5: links[0].mtu: only net links have an MTU",
    "8:26: links[0].members[0].address: only members of net links have an address",
  ]],
  ['net-mtu', [
    "8:5: links[0].mtu: 9000 is outside 68..3648, the MTUs a 16384-byte output section allows",
  ]],
  ['net-mtu-tap', [
    "8:5: links[0].mtu: 65535 is outside 68..65521, the MTUs a TAP device allows",
  ]],
  ['net-overlap', [
    "11:77: links[1].members[1].address: 10.0.0.9/16 overlaps 10.0.0.2/24 of link \"n0\" (links[0].members[1]) in namespace \"nb\"",
  ]],
  ['net-peers', [
    "7:5: links[0].peers: an ivshmem-net link joins exactly 2 peers, not 3",
  ]],
  ['net-too-small', [
    "7:5: links[0].outputSize: 0 bytes cannot hold an ivshmem-net queue (ring plus 4 minimum frames); use at least 4096 (Jailhouse uses 0x7F000)",
  ]],
  ['peers-range', [
    "7:5: links[0].peers: 65 is outside 2..64",
  ]],
  ['protocol-channel', [
    "7:5: links[0].protocol: 0x8001 is outside 0x4000..0x7FFF (user protocols), the range of a channel link",
  ]],
  ['protocol-net', [
    "7:5: links[0].protocol: 0x0002 is outside 0x0001 (ivshmem-net), the range of a net link",
  ]],
  ['restart', [
    "2:28: cells[0].restart.policy: must be one of \"never\", \"on-failure\", \"always\", not \"sometimes\"",
    "3:55: cells[1].restart.maxRestarts: must be at least 0",
  ]],
  ['schema-kind', [
    "6:5: links[0].kind: must be one of \"raw\", \"net\", \"channel\", \"pubsub\", not \"ethernet\"",
  ]],
  ['schema-size', [
    "7:5: links[0].outputSize: must be a byte count: a number or a string like \"4096\", \"64K\", \"1M\" or \"0x7F000\"",
  ]],
  ['schema-type', [
    "7:5: links[0].vectors: must be a number, not \"two\"",
  ]],
  ['schema-unknown-key', [
    "2:33: cells[0].colour: unknown key; check the spelling against examples/ and docs/system.md",
  ]],
  ['shm-free', [
    "5:1: links: the links need 2 MiB of shared memory but /dev/shm has only 512 KiB free",
  ]],
  ['shm-limit', [
    "5:1: links: the links need 2 MiB of shared memory, above the limit of 1 MiB; shrink the links or raise limits.sharedMemory",
  ]],
  ['size-page', [
    "7:5: links[0].outputSize: 10000 bytes is not a multiple of the 4096-byte page",
  ]],
  ['size-max', [
    "8:5: links[0].outputSize: 1073745920 bytes is above the largest section size, 1 GiB (1073741824 bytes)",
    "9:5: links[0].stateSize: 8589934592 bytes is above the largest section size, 1 GiB (1073741824 bytes)",
  ]],
  ['size-rw-page', [
    "7:5: links[0].rwSize: 1024 bytes is not a multiple of the 4096-byte page",
  ]],
  ['state-too-small', [
    "7:5: links[0].stateSize: 0 bytes cannot hold 2 32-bit state entries",
  ]],
  ['too-many-members', [
    "9:5: links[0].members: 3 members but the link has 2 peers; raise peers or remove a member",
  ]],
  ['unknown-cell', [
    "7:37: links[0].members[1].cell: unknown cell \"c\"; the cells are a, b",
  ]],
  ['vectors-range', [
    "7:5: links[0].vectors: 17 is outside 1..16",
  ]],
  ['vectors-zero', [
    "7:5: links[0].vectors: 0 is outside 1..16",
  ]],
  ['yaml-alias-bomb', [
    "aliases expand to too much (more than 100 alias uses, counting nested ones); write the repeated parts out",
  ]],
  ['yaml-depth', [
    "1:39: nested more than 32 levels deep; a system file needs no more than 5 (see docs/system.md)",
  ]],
  ['yaml-syntax', [
    "3:1: not valid YAML or JSON: Flow map in block collection must be sufficiently indented and end with a }",
  ]],
];

for (const [name, expected] of RULES) {
  test(`check rejects ${name}`, () => {
    const r = checkSystemFile(fixture(name), { shmFree: name === 'shm-free' ? 512 * 1024 : null });
    const got = r.problems.map((p) => `${p.line !== undefined ? `${p.line}:${p.column}: ` : ''}${p.path ? `${p.path}: ` : ''}${p.message}`);
    assert.deepEqual(got, expected);
    assert.equal(r.system, undefined);
  });
}

test('every rule has a fixture and every fixture a rule', () => {
  const files = fs.readdirSync(fixtureDir).filter((f) => f.startsWith('system-bad-'));
  assert.deepEqual(files.map((f) => f.slice('system-bad-'.length).replace(/\.(yaml|json)$/, '')).sort(), RULES.map(([n]) => n).sort());
});

test('the CLI prints every problem with the file name and exits 1', () => {
  const file = fixture('many-problems');
  const r = spawnSync(process.execPath, [cli, 'check', '--no-shm-free', file], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 6);
  assert.equal(lines[0], `${file}:6:5: links[0].vectors: 20 is outside 1..16`);
  assert.equal(lines[5], `${file}: 5 problems`);
});

test('3,000 levels of nesting, block or flow, YAML or JSON, are a problem, not a crash (check and up)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ivshm-check-deep-'));
  try {
    const n = 3000;
    const texts: [string, string][] = [
      ['block.yaml', `cells:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i + 2)}a:`).join('\n')} 1\n`],
      ['seq.yaml', `cells:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(2 * i + 2)}-`).join('\n')} x\n`],
      ['flow.yaml', `cells: ${'['.repeat(n)}${']'.repeat(n)}\n`],
      ['deep.json', `{"cells": ${'{"a": '.repeat(n)}1${'}'.repeat(n)}}`],
    ];
    const message = 'nested more than 32 levels deep; a system file needs no more than 5 (see docs/system.md)';
    for (const [name, text] of texts) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      assert.deepEqual(checkSystemFile(file).problems.map((p) => p.message), [message], name);
      for (const cmd of ['check', 'up']) {
        const r = spawnSync(process.execPath, [cli, cmd, file], { encoding: 'utf8', timeout: 30000 });
        assert.equal(r.status, cmd === 'check' ? 1 : 2, `${cmd} ${name}: ${r.stderr}`);
        assert.ok(r.stderr.includes(message), `${cmd} ${name}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /\n\s+at /, `${cmd} ${name}: a stack trace`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an alias bomb is a problem, not a crash (check and up)', () => {
  for (const cmd of ['check', 'up']) {
    const r = spawnSync(process.execPath, [cli, cmd, fixture('yaml-alias-bomb')], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, cmd === 'check' ? 1 : 2, r.stderr);
    assert.match(r.stderr, /aliases expand to too much/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('a .json file is read as JSON: its errors are JSON errors, and a file valid as YAML only is refused', () => {
  const r = spawnSync(process.execPath, [cli, 'check', fixture('json-syntax')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /system-bad-json-syntax\.json:3:39: not valid JSON: Expected double-quoted property name\n/);
  // YAML accepts this flow mapping (unquoted keys and values); JSON does not.
  assert.deepEqual(checkSystemText('{cells: [{name: a, command: x}]}', 'x.json').problems.map((p) => p.message), [
    'not valid JSON: Expected property name or \'}\'',
  ]);
  assert.deepEqual(checkSystemText('{cells: [{name: a, command: x}]}', 'x.yaml', { shmFree: null }).problems, []);
  // Duplicate keys are legal JSON but ambiguous: refused, worded as JSON.
  assert.deepEqual(checkSystemText('{"cells": [], "cells": []}', 'x.json').problems.map((p) => p.message), ['not valid JSON: Map keys must be unique']);
});

test('the shipped examples, the JSON fixture and the built-in demo pass', () => {
  const files = [
    ...fs.readdirSync(path.join(root, 'examples')).filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => path.join(root, 'examples', f)),
    path.join(root, 'test/fixtures/system-ok.json'),
  ];
  assert.ok(files.length >= 2);
  for (const f of files) {
    const r = checkSystemFile(f, { shmFree: null });
    assert.deepEqual(r.problems, [], f);
    assert.ok(r.system);
  }
  for (const namespaces of [true, false]) {
    assert.deepEqual(checkSystemText(demoSystemYaml({ namespaces }), 'demo', { shmFree: null }).problems, []);
  }
  const r = spawnSync(process.execPath, [cli, 'check', files[0]!], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok: 2 cells, 2 links/);
});

test('resolution: default IDs, protocols, sizes and stable MACs', () => {
  const text = `
name: s
cells: [{ name: a, command: x, netns: na }, { name: b, command: y, netns: nb }]
links:
  - { name: n0, kind: net, members: [{ cell: b, id: 1 }, { cell: a }] }
  - { name: c0, kind: channel, outputSize: 64K, members: [{ cell: a }, { cell: b }] }
`;
  const r1 = checkSystemText(text, 't', { shmFree: null });
  const r2 = checkSystemText(text, 't', { shmFree: null });
  assert.deepEqual(r1.problems, []);
  const [n0, c0] = r1.system!.links;
  assert.deepEqual(n0!.members.map((m) => [m.cell, m.id, m.interface]), [['b', 1, 'n0'], ['a', 0, 'n0']]);
  assert.equal(n0!.protocol, 1);
  assert.equal(n0!.vectors, 2);
  assert.equal(n0!.outputSize, 0x7f000);
  assert.match(n0!.members[0]!.mac!, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/);
  assert.equal(n0!.members[0]!.mac, r2.system!.links[0]!.members[0]!.mac);
  assert.notEqual(n0!.members[0]!.mac, n0!.members[1]!.mac);
  assert.equal(c0!.protocol, 0x4348);
  assert.equal(r1.system!.sharedMemory, 4096 + 2 * 0x7f000 + 4096 + 2 * 65536);
  assert.equal(r1.system!.cells[0]!.restart.policy, 'on-failure');
});

test('sizes in any form the CLI takes; 1 GiB sections (the largest) pass', () => {
  const text = `
limits: { sharedMemory: 8G }
cells: [{ name: a, command: x }, { name: b, command: y }]
links:
  - { name: n0, kind: net, outputSize: "0x7F000", members: [{ cell: a, interface: n0a }, { cell: b, interface: n0b, outputSize: 520192 }] }
  - { name: r0, kind: raw, outputSize: 1G, stateSize: 1GiB, rwSize: "0x40000000", members: [{ cell: a }, { cell: b }] }
`;
  const r = checkSystemText(text, 't', { shmFree: null });
  assert.deepEqual(r.problems, []);
  assert.equal(r.system!.links[0]!.outputSize, 0x7f000);
  assert.deepEqual([r.system!.links[1]!.outputSize, r.system!.links[1]!.stateSize, r.system!.links[1]!.rwSize], [2 ** 30, 2 ** 30, 2 ** 30]);
});

test('check --schema prints a JSON Schema that accepts the shipped example', () => {
  const r = spawnSync(process.execPath, [cli, 'check', '--schema'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const schema = JSON.parse(r.stdout) as { type: string; required: string[]; properties: Record<string, unknown> };
  assert.equal(schema.type, 'object');
  assert.deepEqual(schema.required, ['cells']);
  assert.ok(schema.properties.links);
});
