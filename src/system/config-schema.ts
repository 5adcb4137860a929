// The system file: which cells exist and which ivshmem links join them, the
// static configuration of a Jailhouse system (docs/system.md). The shape is validated by
// zod; the rules that need the whole file (references, IDs, sizes, addresses)
// live in check.ts so that every problem is reported at once.
//
// Unlike Jailhouse, where every cell repeats the link's parameters in its own
// device entry and nothing compares them, a link is declared once
// here. A member may still repeat `peers`, `vectors`, `protocol` or a size
// (handy when porting a Jailhouse config); check.ts reports any mismatch (docs/system.md "Links").
import { z } from 'zod';
import { INTEGER_PATTERN, integerValue, SIZE_FORMS, SIZE_PATTERN, sizeValue } from '../units.js';
import { IVSHM_PROTO_CHANNEL, IVSHM_PROTO_USER_MAX, IVSHM_PROTO_USER_MIN } from '../channel/layout.js';

export const LINK_KINDS = ['raw', 'net', 'channel', 'pubsub'] as const;
export type LinkKind = (typeof LINK_KINDS)[number];
export const RESTART_POLICIES = ['never', 'on-failure', 'always'] as const;
export type RestartPolicy = (typeof RESTART_POLICIES)[number];

/** A byte count: a number, or a string like "64K", "1M", "0x7F000" (src/units.ts). */
const size = z.custom<number | string>((v) => sizeValue(v) !== undefined, { message: `must be a byte count: ${SIZE_FORMS}` });
const intOrHex = z.custom<number | string>((v) => integerValue(v) !== undefined, { message: 'must be an integer (decimal or 0x hex)' });

export const restartSchema = z.strictObject({
  policy: z.enum(RESTART_POLICIES).default('on-failure'),
  /** Restarts allowed inside `windowMs` before the cell is left failed. */
  maxRestarts: z.int().min(0).max(1000).default(5),
  windowMs: z.int().min(0).default(60_000),
  /** Delay before a restart, doubled on each consecutive one up to 30 s. */
  delayMs: z.int().min(0).max(600_000).default(200),
});

export const cellSchema = z.strictObject({
  name: z.string(),
  /** Program to run, looked up in PATH; `node` means the running Node binary. */
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  /** Network namespace the cell (and its net links' TAP devices) live in; created by `up`. */
  netns: z.string().optional(),
  // A bare policy name is short for { policy: NAME }.
  restart: z.preprocess((v) => (typeof v === 'string' ? { policy: v } : v ?? {}), restartSchema),
  /** Start with `ivshm up` (false: only by `ivshm cell start`). */
  autostart: z.boolean().default(true),
});

export const memberSchema = z.strictObject({
  cell: z.string(),
  /** Peer ID on the link; omitted IDs take the lowest free one in order. */
  id: z.int().min(0).optional(),
  // Repetitions of link parameters (Jailhouse style); must agree with the link (docs/system.md "Links").
  peers: z.int().optional(),
  vectors: z.int().optional(),
  protocol: intOrHex.optional(),
  outputSize: size.optional(),
  rwSize: size.optional(),
  stateSize: size.optional(),
  // net links only
  /** Interface name of this member's TAP device (default: the link name). */
  interface: z.string().optional(),
  /** Address with prefix, e.g. 10.19.0.1/24. */
  address: z.string().optional(),
  mac: z.string().optional(),
});

export const linkSchema = z.strictObject({
  name: z.string(),
  kind: z.enum(LINK_KINDS),
  /** MAX_PEERS; default: the number of members, at least 2. */
  peers: z.int().optional(),
  /** Interrupt vectors per peer; default 2 for net (docs/spec-net.md §1), 1 otherwise. */
  vectors: z.int().optional(),
  /** Protocol number; default per kind (net 0x0001, channel and pubsub 0x4348, raw 0). */
  protocol: intOrHex.optional(),
  outputSize: size.optional(),
  rwSize: size.default(0),
  stateSize: size.default(4096),
  /** net links only: MTU of both TAP devices. */
  mtu: z.int().optional(),
  members: z.array(memberSchema).min(1),
});

export const systemSchema = z.strictObject({
  /** Name of the system (used for the runtime directory). */
  name: z.string().default('ivshm'),
  /** Base of the runtime directory <base>/<name> (default /run/ivshm as root, else $XDG_RUNTIME_DIR/ivshm or /tmp/ivshm-<uid>). */
  runtimeDir: z.string().optional(),
  limits: z
    .strictObject({
      /** Upper bound for the shared memory of all links together. */
      sharedMemory: size.default('1G'),
    })
    .default({ sharedMemory: '1G' }),
  cells: z.array(cellSchema).min(1),
  links: z.array(linkSchema).default([]),
});

// The checker parses in layers, so one bad cell or member does not hide the
// problems of the others: the shell first, then each cell, link and member.
export const systemShellSchema = systemSchema.extend({
  cells: z.array(z.unknown()).min(1),
  links: z.array(z.unknown()).default([]),
});
export const linkShellSchema = linkSchema.extend({ members: z.array(z.unknown()).min(1) });

export type SystemFile = z.infer<typeof systemSchema>;
export type CellConfig = z.infer<typeof cellSchema>;
export type LinkConfig = z.infer<typeof linkSchema>;
export type MemberConfig = z.infer<typeof memberSchema>;
export type RestartConfig = z.infer<typeof restartSchema>;

/** Default protocol per link kind and the range a kind accepts (0x4000-0x7FFF is the range for user protocols, docs/system.md "Links"). */
export const KIND_PROTOCOL: Record<LinkKind, { default: number; min: number; max: number; what: string }> = {
  raw: { default: 0, min: 0, max: 0xffff, what: '0x0000..0xFFFF' },
  net: { default: 0x0001, min: 0x0001, max: 0x0001, what: '0x0001 (ivshmem-net)' },
  channel: { default: IVSHM_PROTO_CHANNEL, min: IVSHM_PROTO_USER_MIN, max: IVSHM_PROTO_USER_MAX, what: '0x4000..0x7FFF (user protocols)' },
  pubsub: { default: IVSHM_PROTO_CHANNEL, min: IVSHM_PROTO_USER_MIN, max: IVSHM_PROTO_USER_MAX, what: '0x4000..0x7FFF (user protocols)' },
};

/** Default output section size per kind: Jailhouse's net macro uses 0x7F000 (docs/system.md "Links"). */
export const KIND_OUTPUT_SIZE: Record<LinkKind, number> = {
  raw: 64 * 1024,
  net: 0x7f000,
  channel: 256 * 1024,
  pubsub: 256 * 1024,
};

type JsonObject = { properties: Record<string, Record<string, unknown>>; required?: string[] };

/** JSON Schema of the system file, for editors (`ivshm check --schema`); docs/system.md lists the same keys. */
export function systemJsonSchema(): unknown {
  const schema = z.toJSONSchema(systemSchema, { unrepresentable: 'any', io: 'input' }) as unknown as JsonObject & {
    properties: { cells: { items: JsonObject }; links: { items: JsonObject & { properties: { members: { items: JsonObject } } } }; limits: JsonObject };
  };
  // What the generator cannot see: the preprocess step that accepts a bare
  // policy name (so `restart` is optional), and the custom size and integer
  // forms (the patterns of src/units.ts).
  const cell = schema.properties.cells.items;
  cell.properties.restart = { anyOf: [{ type: 'string', enum: [...RESTART_POLICIES] }, cell.properties.restart] };
  cell.required = cell.required?.filter((k) => k !== 'restart');
  const sizeSchema = { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: SIZE_PATTERN }] };
  const intSchema = { anyOf: [{ type: 'integer' }, { type: 'string', pattern: INTEGER_PATTERN }] };
  const link = schema.properties.links.items;
  for (const props of [link.properties, link.properties.members.items.properties, schema.properties.limits.properties]) {
    for (const [key, v] of Object.entries(props)) {
      if (/Size$|^sharedMemory$/.test(key)) props[key] = { ...sizeSchema, ...v };
      if (key === 'protocol') props[key] = { ...intSchema, ...v };
    }
  }
  return schema;
}
