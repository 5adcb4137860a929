// Readiness of fds on the Node event loop. koffi.node.poll handles are
// level-triggered and are closed when garbage-collected, so every live handle
// is kept in `live` until closed (docs/design.md §3).
import { pollFd, type PollHandle } from './libc.js';

// libuv allows one uv_poll per fd: a second watch on the same fd (say
// readable and writable separately) aborts Node. Use fd-watch.ts's
// watchDuplex when both directions are needed.
const live = new Set<PollHandle>();

export interface Watch {
  close(): void;
  /** Let the process exit while only this watch is active. */
  unref(): void;
  ref(): void;
}

/**
 * Call `onReadable` whenever `fd` is readable (or hung up). The callback must
 * drain the fd, or it is called again at once.
 */
export function watchReadable(fd: number, onReadable: (hangup: boolean) => void): Watch {
  return watch(fd, { readable: true, disconnect: true }, (status, ev) => onReadable(status < 0 || ev.disconnect));
}

/** Watch for writability (a full socket buffer draining). */
export function watchWritable(fd: number, onWritable: () => void): Watch {
  return watch(fd, { writable: true }, () => onWritable());
}

/** One referenced poll handle that stops delivering once closed. */
function watch(
  fd: number,
  opts: { readable?: boolean; writable?: boolean; disconnect?: boolean },
  cb: (status: number, ev: { readable: boolean; writable: boolean; disconnect: boolean }) => void,
): Watch {
  let closed = false;
  const handle = pollFd(fd, opts, (status, ev) => {
    if (!closed) cb(status, ev);
  });
  live.add(handle);
  return {
    close() {
      if (closed) return;
      closed = true;
      live.delete(handle);
      handle.close();
    },
    unref: () => handle.unref(),
    ref: () => handle.ref(),
  };
}

