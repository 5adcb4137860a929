// Progress of long operations (starting many cells, benchmarks) on a terminal:
// one self-overwriting line on a TTY, plain lines otherwise (logs, CI).
export interface Progress {
  step(n: number, total: number, what: string): void;
  done(message?: string): void;
}

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  const tty = stream.isTTY === true;
  let last = 0;
  return {
    step(n, total, what) {
      const width = 20;
      const filled = Math.round((n / total) * width);
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${n}/${total} ${what}`;
      if (tty) {
        const cols = stream.columns || 80;
        const text = line.length > cols - 1 ? line.slice(0, cols - 1) : line;
        stream.write(`\r${text}${' '.repeat(Math.max(0, last - text.length))}`);
        last = text.length;
      } else {
        stream.write(`${n}/${total} ${what}\n`);
      }
    },
    done(message) {
      if (tty && last) stream.write(`\r${' '.repeat(last)}\r`);
      last = 0;
      if (message) stream.write(`${message}\n`);
    },
  };
}
