// Mutation testing of the in-process protocol modules (README, "Tests"):
// `npm run mutate`. Slow and CPU heavy, so not part of npm test or CI; while
// working on one module: `npm run mutate -- --mutate src/virtio/driver.ts`.
// The tap runner runs each compiled node:test file (TAP output) in its own
// process; the sandbox is built with tsc first. Coverage is per test file, so
// a mutant runs only the files that reach it.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  "packageManager": "npm",
  "testRunner": "tap",
  "checkers": [
    "typescript"
  ],
  // The checker type-checks each mutant against src only (fast); the build compiles everything.
  "tsconfigFile": "tsconfig.mutate.json",
  "buildCommand": "tsc -p tsconfig.json",
  "coverageAnalysis": "perTest",
  "concurrency": 2,
  "mutate": [
    "src/virtio/split-ring.ts",
    "src/virtio/driver.ts",
    "src/virtio/device.ts",
    "src/virtio/views.ts",
    "src/virtio/violation.ts",
    "src/net/queue.ts",
    "src/net/sizing.ts",
    "src/channel/ring.ts",
    "src/channel/layout.ts",
    "src/ivshmem/layout.ts",
    "src/ivshmem/params.ts",
    "src/ivshmem/endpoint-base.ts",
    "src/units.ts"
  ],
  "tap": {
    "testFiles": [
      "dist/test/virtio/*.test.js",
      "dist/test/net/queue.test.js",
      "dist/test/net/sizing.test.js",
      "dist/test/net/endpoint.test.js",
      "dist/test/net/interop.test.js",
      "dist/test/channel/channel.test.js",
      "dist/test/channel/pubsub.test.js",
      "dist/test/ivshmem/layout.test.js",
      "dist/test/ivshmem/params.test.js",
      "dist/test/ivshmem/endpoint-base.test.js",
      "dist/test/units.test.js"
    ]
  },
  "ignorePatterns": [
    "dist",
    "bench/results",
    "test-artifacts",
    "reports",
    ".stryker-tmp"
  ],
  "reporters": [
    "clear-text",
    "progress",
    "html",
    "json"
  ],
  "htmlReporter": {
    "fileName": "reports/mutation/mutation.html"
  },
  "jsonReporter": {
    "fileName": "reports/mutation/mutation.json"
  },
  "timeoutMS": 20000,
  "timeoutFactor": 3
};
