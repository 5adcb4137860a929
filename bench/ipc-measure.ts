// The measuring loops of bench/ipc.ts, identical for every transport.
//
// Latency: ping-pong at a fixed rate; each round trip is measured from the
// time the ping was *due*, not from when it was sent, so a stall delays the
// following pings and is counted (no coordinated omission; Aeron's
// LoadTestRig method, anchors.md 1.3). Recorded in an HDR histogram (ns).
// Throughput: send as fast as back-pressure allows for a bounded count or
// time, then END; done when every receiver has answered with its count.
import { COUNT, DATA, END, PING, PONG, type BenchLink } from './ipc-links.js';
import { newHistogram, nsToUs } from './stats.js';

export interface LatencyResult {
  samples: number;
  rateHz: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** Round trip from the actual send (not from the due time): what one exchange costs. */
  service: { p50: number; p99: number; p999: number };
  /** Share of pings sent more than one interval late: above ~0.1 the transport (or the machine) could not keep the rate. */
  lateShare: number;
}

export interface ThroughputResult {
  messages: number;
  bytes: number;
  seconds: number;
  msgsPerSec: number;
  GBps: number;
  /** Messages counted by the receivers (must equal messages x receivers). */
  received: number;
}

// performance.now() (a double, ns resolution in Node) reads in ~50 ns here,
// process.hrtime.bigint() in ~70 ns plus a BigInt: the clock is part of every
// microsecond-scale sample, so the cheaper one.
const nowNs = (): number => Math.round(performance.now() * 1e6);
const immediate = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A bench that hangs must fail with a reason: the waiter given to `arm()` (or
 * `guard(p)`) is rejected when nothing made progress (`tick()`) for 10 s. One
 * interval timer; `arm()` adds nothing to the measured path, `guard()` wraps
 * a promise and is only for waits outside it (back-pressure, the final count).
 */
function stallGuard(what: () => string) {
  let last = nowNs();
  let fail: ((e: Error) => void) | null = null;
  const timer = setInterval(() => {
    if (fail && nowNs() - last > 10e9) fail(new Error(`${what()}: no progress within 10 s (a message was lost or the peer stalled)`));
  }, 1000);
  return {
    tick: () => void (last = nowNs()),
    arm: (reject: (e: Error) => void) => void (fail = reject),
    guard<T>(p: Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        fail = reject;
        p.then(resolve, reject);
      });
    },
    stop: () => clearInterval(timer),
  };
}

async function waitUntil(dueNs: number): Promise<void> {
  for (;;) {
    const left = dueNs - nowNs();
    if (left <= 0) return;
    if (left > 2e6) await sleep((left - 1e6) / 1e6);
    else await immediate();
  }
}

export async function latency(link: BenchLink, size: number, samples: number, intervalUs: number, warmup: number): Promise<LatencyResult> {
  const h = newHistogram();
  const hs = newHistogram();
  let late = 0;
  const buf = Buffer.alloc(size);
  buf[0] = PING;
  let wake: (() => void) | null = null;
  let answered = false;
  link.onMessage = (type) => {
    if (type !== PONG) return;
    answered = true;
    if (wake) {
      const w = wake;
      wake = null;
      w();
    }
  };
  const poll = link.pollSync;
  const interval = intervalUs * 1000;
  const total = samples + warmup;
  let i = 0;
  const sg = stallGuard(() => `latency, ${size} B, ping ${i}`);
  let start = nowNs();
  for (; i < total; i++) {
    if (i === warmup) start = nowNs();
    const due = i < warmup ? nowNs() : start + (i - warmup) * interval;
    let sentAt: number;
    if (poll) {
      // Busy-poll transport: yield to the event loop until 20 µs before the
      // due time, busy-wait the rest, then spin on poll() for the answer.
      await waitUntil(due - 20000);
      let now = nowNs();
      while (now < due) now = nowNs();
      answered = false;
      sentAt = now;
      const p = link.send(buf);
      if (p) await p;
      for (let spins = 1; !answered; spins++) {
        poll();
        if ((spins & 0xfff) === 0 && nowNs() - sentAt > 10e9) throw new Error(`latency, ${size} B, ping ${i}: no answer within 10 s (a message was lost or the peer stalled)`);
      }
    } else {
      await waitUntil(due);
      const got = new Promise<void>((r, j) => {
        wake = r;
        sg.arm(j);
      });
      sentAt = nowNs();
      const p = link.send(buf);
      if (p) await p;
      await got;
    }
    const t = nowNs();
    sg.tick();
    if (i >= warmup) {
      h.recordValue(Math.max(1, t - due));
      hs.recordValue(Math.max(1, t - sentAt));
      if (sentAt - due > interval) late++;
    }
  }
  sg.stop();
  const r: LatencyResult = {
    samples,
    rateHz: Math.round(1e6 / intervalUs),
    p50: nsToUs(h.getValueAtPercentile(50)),
    p90: nsToUs(h.getValueAtPercentile(90)),
    p99: nsToUs(h.getValueAtPercentile(99)),
    p999: nsToUs(h.getValueAtPercentile(99.9)),
    max: nsToUs(h.maxValue),
    mean: nsToUs(h.mean),
    service: { p50: nsToUs(hs.getValueAtPercentile(50)), p99: nsToUs(hs.getValueAtPercentile(99)), p999: nsToUs(hs.getValueAtPercentile(99.9)) },
    lateShare: Math.round((late / samples) * 1000) / 1000,
  };
  h.destroy();
  hs.destroy();
  return r;
}

export async function throughput(link: BenchLink, size: number, maxMessages: number, maxSeconds: number): Promise<ThroughputResult> {
  const buf = Buffer.alloc(size);
  buf[0] = DATA;
  let counts = 0;
  let received = 0;
  let done: (() => void) | null = null;
  link.onMessage = (type, _len, u32) => {
    if (type !== COUNT) return;
    received += u32();
    if (++counts === link.counters && done) done();
  };
  let sent = 0;
  const sg = stallGuard(() => `throughput, ${size} B, message ${sent}`);
  const allCounted = new Promise<void>((r) => (done = r));
  const t0 = nowNs();
  const limit = t0 + maxSeconds * 1e9;
  while (sent < maxMessages) {
    const p = link.send(buf);
    sent++;
    if (p) {
      await sg.guard(p);
      sg.tick();
    }
    // Check the clock and let the event loop breathe every 256 messages.
    if ((sent & 255) === 0) {
      if (nowNs() > limit) break;
      await immediate();
    }
  }
  const end = Buffer.alloc(64);
  end[0] = END;
  sg.tick();
  const p = link.send(end);
  if (p) await sg.guard(p);
  await sg.guard(allCounted);
  sg.stop();
  const seconds = (nowNs() - t0) / 1e9;
  return {
    messages: sent,
    bytes: sent * size,
    seconds: Math.round(seconds * 1e4) / 1e4,
    msgsPerSec: Math.round(sent / seconds),
    GBps: Math.round(((sent * size) / seconds / 1e9) * 1000) / 1000,
    received,
  };
}
