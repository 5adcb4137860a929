// `npm run fuzz -- --seconds N [--seed S]`: run the malicious-peer simulator
// for N seconds and print what it tried. Exit 1 on any failure.
import { runHostile } from './simulator.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function intArg(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} ${v}: expected a non-negative integer`);
    process.exit(2);
  }
  return n;
}

const seconds = intArg('seconds', 10);
const seed = intArg('seed', Date.now() % 2 ** 31);
const verbose = process.argv.includes('--verbose');
console.log(`hostile peer fuzz: seed ${seed}, ${seconds} s`);
const report = await runHostile({ seed, seconds, log: verbose ? (l) => console.log(l) : undefined });
console.log(`rounds ${report.rounds}, mutations tried ${report.mutations} (targeted ${report.targeted}), recoveries ${report.recoveries}`);
console.log(`legit frames checked ${report.legitFramesChecked}, forged frames delivered after validation ${report.forgedFramesDelivered}`);
console.log(`violations counted by the victim: ${JSON.stringify(report.violations)}`);
if (report.failures.length) {
  console.error(`FAILED (seed ${seed}):`);
  for (const f of report.failures.slice(0, 20)) console.error(`  ${f}`);
  process.exit(1);
}
console.log('ok: the victim never threw, delivered only validated frames, counted every violation and recovered after each handshake');
process.exit(0);
