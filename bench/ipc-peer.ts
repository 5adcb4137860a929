// One process (or worker) of bench/ipc.ts. argv[2] is a JSON config.
// role 'ping' measures and reports to the parent over IPC; 'pong' echoes;
// 'sub' is an extra pub-sub subscriber.
import { isMainThread } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { channelLink, spinLoop, cpIpcClient, cpIpcServer, echo, pubsubLink, streamClient, streamServer, workerClient, workerServer, type BenchLink } from './ipc-links.js';
import { latency, throughput } from './ipc-measure.js';
import type { WaitMode } from '../src/channel/index.js';

export interface PeerConfig {
  role: 'ping' | 'pong' | 'sub';
  transport: string;
  /** ivshm broker socket or UNIX socket path. */
  path?: string;
  port?: number;
  id?: number;
  peers?: number;
  mode?: WaitMode;
  /** ivshm channel: busy-poll with Channel.poll() in a synchronous loop. */
  spin?: boolean;
  plan?: Array<{ size: number; samples: number; intervalUs: number; warmup: number; messages: number; seconds: number }>;
}

const self = fileURLToPath(import.meta.url);
const cfg = JSON.parse(process.argv[2] ?? '{}') as PeerConfig;

async function open(): Promise<BenchLink> {
  switch (cfg.transport) {
    case 'uds':
      return streamClient(cfg.path!);
    case 'tcp':
      return streamClient({ port: cfg.port! });
    case 'cp-ipc':
      return cpIpcClient(self, cfg);
    case 'worker':
      return workerClient(self, cfg);
    case 'channel':
      return channelLink(cfg.path!, cfg.id ?? 0, cfg.mode ?? 'event', undefined, cfg.spin);
    case 'pubsub':
      return pubsubLink(cfg.path!, cfg.id ?? 0, cfg.peers ?? 2, cfg.mode ?? 'event');
  }
  throw new Error(`unknown transport ${cfg.transport}`);
}

async function ping(): Promise<void> {
  const link = await open();
  for (const step of cfg.plan ?? []) {
    const lat = await latency(link, step.size, step.samples, step.intervalUs, step.warmup);
    const thr = await throughput(link, step.size, step.messages, step.seconds);
    process.send!({ size: step.size, latency: lat, throughput: thr });
  }
  await link.close();
  process.send!('done');
}

async function pong(): Promise<void> {
  switch (cfg.transport) {
    case 'uds':
      return streamServer(cfg.path!, () => process.send!('ready'));
    case 'tcp':
      return streamServer({ port: cfg.port! }, () => process.send!('ready'));
    case 'cp-ipc':
      return cpIpcServer();
    case 'worker':
      return workerServer();
    case 'channel': {
      const link = await channelLink(cfg.path!, cfg.id ?? 1, cfg.mode ?? 'event', (l) => echo(l), cfg.spin);
      process.send!('ready');
      if (link.pollSync) await spinLoop(link.pollSync);
      return;
    }
    case 'pubsub': {
      await pubsubLink(cfg.path!, cfg.id ?? 1, cfg.peers ?? 2, cfg.mode ?? 'event');
      process.send!('ready');
      return;
    }
  }
}

if (!isMainThread) workerServer();
else if (cfg.role === 'ping') void ping();
else void pong();
