import type { Server } from 'node:http';
import { Server as NetServer } from 'node:net';

/** Options of {@link drainServer}. */
export interface DrainOptions {
  /**
   * How long a keep-alive connection may stay idle once draining began
   * before it is closed. Connections that carry a request in that time are
   * closed by its `Connection: close` answer instead, which no client can
   * race; the check repeats at this interval.
   */
  idleCloseMs: number;
  /** The hard deadline: connections still open then are cut. */
  timeoutMs: number;
}

/**
 * Drains an HTTP server for a graceful stop (a rolling restart): it stops
 * accepting connections at once, closes keep-alive connections that stay
 * idle, and resolves as soon as the last connection is gone; at the
 * deadline whatever is left is cut. The application answers every response
 * while draining with `Connection: close` (src/app.ts), so busy keep-alive
 * connections end cleanly after their current response.
 *
 * Resolves with the number of connections cut at the deadline.
 */
export async function drainServer(server: Server, options: DrainOptions): Promise<number> {
  // http.Server#close would also close every idle connection at this very
  // moment, resetting requests already on their way on them; net.Server's
  // close only stops accepting, and the idle ones are left to the sweep.
  const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()));
  const sweep = setInterval(() => server.closeIdleConnections(), options.idleCloseMs);
  let cut = 0;
  const deadline = setTimeout(() => {
    server.getConnections((_err, count) => { cut = count; });
    server.closeAllConnections();
  }, options.timeoutMs);
  try {
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(deadline);
  }
  return cut;
}
