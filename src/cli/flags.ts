// Library options are named by their keys (outputSize) in the library's
// errors; the CLI's users know the flags (--output-size). The CLI runs the
// library call through withFlagNames, which re-words every "key: " that
// starts a problem in an InvalidArgumentError into "--flag: ".
import { InvalidArgumentError } from '../errors.js';

/** "outputSize" -> "--output-size". */
export const flagOf = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Run `fn`; re-word the option keys `keys` at the start of each problem of an InvalidArgumentError as flags. */
export function withFlagNames<T>(keys: readonly string[], fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    // Problems are joined with "; " (src/ivshmem/params.ts problemText).
    const re = new RegExp(`(^|; )(${keys.join('|')}): `, 'g');
    const message = err.message.replace(re, (_m, sep: string, key: string) => `${sep}${flagOf(key)}: `);
    if (message === err.message) throw err;
    throw new InvalidArgumentError(message);
  }
}
