// The README's channel example is a contract: run it as a user would (a file
// next to the package, importing 'ivshm') and compare with what the README
// says it prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The first fenced block (`lang` fence) after offset `from` of the README: its text and where it ends. */
function block(readme: string, from: number, lang: string): { text: string; end: number } {
  const open = readme.indexOf('```' + lang + '\n', from);
  const close = readme.indexOf('\n```\n', open + 4 + lang.length);
  assert.ok(from >= 0 && open >= 0 && close > open, `no \`\`\`${lang} block after offset ${from}`);
  return { text: readme.slice(open + 4 + lang.length, close + 1), end: close + 5 };
}

test('README channel example runs and prints what the README says', { timeout: 30000 }, async () => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const example = block(readme, readme.indexOf('### Example (runnable: `node chat.mjs`)'), 'js');
  const code = example.text;
  // "prints" and then a plain fence right after the example.
  const after = readme.slice(example.end, example.end + 20);
  assert.match(after, /^\s*prints\s*\n/, 'the example is followed by what it prints');
  const expected = block(readme, example.end, '').text;
  // Inside the package directory, so `import ... from 'ivshm'` resolves to this package.
  const dir = path.join(root, 'test-artifacts');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'chat.mjs');
  fs.writeFileSync(file, code);
  const child = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 20000);
  const code_ = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(watchdog);
  assert.equal(code_, 0, `chat.mjs exited with ${code_}; stderr:\n${err}`);
  assert.equal(out, expected);
  assert.ok(!fs.existsSync('/tmp/ivshm-chat.sock'), 'the broker removed its socket');
});
