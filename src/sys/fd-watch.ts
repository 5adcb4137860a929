// One poll handle per fd for readability AND writability. libuv allows a
// single uv_poll per fd: a second koffi.node.poll on the same fd (e.g.
// watchReadable + watchWritable from poll.ts) aborts the process with
// "FATAL ERROR: Error::New napi_get_last_error_info". A server that queues
// output behind a full socket buffer while it watches the socket for input
// (the QEMU ivshmem server) needs both on one handle, switched on demand.
import { pollFd, type PollHandle } from './libc.js';

// Unreferenced handles are garbage-collected and closed (docs/design.md §3).
const live = new Set<PollHandle>();

export interface DuplexWatch {
  /** Also report writability (while output is queued), or stop doing so. */
  setWritable(on: boolean): void;
  close(): void;
}

type Cb = (status: number, ev: { readable: boolean; writable: boolean; disconnect: boolean }) => void;

/**
 * Watch `fd` for input/hangup (always) and for writability (when enabled).
 * Level-triggered: `onReadable` must consume input or close the watch.
 */
export function watchDuplex(fd: number, onReadable: (hangup: boolean) => void, onWritable: () => void): DuplexWatch {
  let closed = false;
  let writable = false;
  const cb: Cb = (status, ev) => {
    if (closed) return;
    if (status < 0 || ev.readable || ev.disconnect) onReadable(status < 0 || ev.disconnect);
    if (!closed && writable && ev.writable) onWritable();
  };
  const handle = pollFd(fd, { readable: true, disconnect: true }, cb);
  live.add(handle);
  return {
    setWritable(on: boolean) {
      if (closed || on === writable) return;
      writable = on;
      // koffi calls back with (status, events), as pollFd in libc.ts declares.
      handle.start({ readable: true, disconnect: true, writable: on }, cb as unknown as (ev: { readable: boolean; writable: boolean; disconnect: boolean }) => void);
    },
    close() {
      if (closed) return;
      closed = true;
      live.delete(handle);
      handle.close();
    },
  };
}
