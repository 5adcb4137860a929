// Small helpers shared by the commands.

export const timestamp = (): string => new Date().toISOString().slice(11, 23);

/**
 * Run `stop` once on SIGINT/SIGTERM, then exit 0. A second signal exits at
 * once (the user insists).
 */
export function onStopSignals(stop: () => Promise<void> | void): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    Promise.resolve()
      .then(stop)
      .then(
        () => process.exit(0),
        (err: unknown) => {
          console.error(`ivshm: error while stopping after ${sig}: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
