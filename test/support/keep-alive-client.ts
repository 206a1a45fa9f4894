import { connect, type Socket } from 'node:net';

/** One HTTP/1.1 response as read off the wire. */
export interface WireResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The outcome of one request on a keep-alive connection, told apart the way
 * a careful client must: `refused` (connection refused: nothing was sent) and
 * `closed-before-send` (the server had closed the idle connection before
 * this request went out) are safe to retry elsewhere; `reset` (the
 * connection died after the request was written, before its response was
 * complete) is a lost request.
 */
export type WireOutcome =
  | { kind: 'response'; response: WireResponse }
  | { kind: 'refused' }
  | { kind: 'closed-before-send' }
  | { kind: 'reset'; error: string };

/**
 * A minimal HTTP/1.1 keep-alive connection written for tests that must see
 * exactly what happened on the wire (Node's Agent hides whether a request
 * was sent before a connection closed). Content-Length and chunked bodies.
 */
export class KeepAliveConnection {
  readonly port: number;
  #socket: Socket | undefined;
  /** The server ended or closed the connection. */
  #ended = false;
  #buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  /** When the server ended the connection (performance.now()), for idle-close checks. */
  closedAt: number | undefined;

  constructor(port: number) {
    this.port = port;
  }

  get open(): boolean {
    return this.#socket !== undefined && !this.#ended;
  }

  async #connect(): Promise<'ok' | 'refused'> {
    return new Promise((resolve) => {
      const socket = connect(this.port, '127.0.0.1');
      socket.setNoDelay(true);
      // Nothing was sent on a connection that never came up: safe to retry elsewhere.
      const onError = () => resolve('refused');
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        socket.on('error', () => { /* surfaced as end of data below */ });
        socket.on('data', (chunk: Buffer) => { this.#buffer = Buffer.concat([this.#buffer, chunk]); this.#wake(); });
        const ended = () => { this.#ended = true; this.closedAt ??= performance.now(); this.#wake(); };
        socket.on('end', ended);
        socket.on('close', ended);
        this.#socket = socket;
        this.#ended = false;
        this.#buffer = Buffer.alloc(0);
        resolve('ok');
      });
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** Sends one request, opening a connection first when there is none (or the last one was closed). */
  async request(method: string, path: string, headers: Record<string, string> = {}, body = ''): Promise<WireOutcome> {
    if (this.#socket && this.#ended) {
      this.#socket.destroy();
      this.#socket = undefined;
      if (this.#buffer.length === 0) return { kind: 'closed-before-send' };
    }
    if (!this.#socket && (await this.#connect()) === 'refused') return { kind: 'refused' };
    const head = [`${method} ${path} HTTP/1.1`, `host: 127.0.0.1:${this.port}`, `content-length: ${Buffer.byteLength(body)}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    this.#socket!.write(`${head}\r\n\r\n${body}`);
    const response = await this.#readResponse();
    if (!response) {
      const error = this.#ended ? 'connection closed before the response was complete' : 'unknown';
      this.#socket?.destroy();
      this.#socket = undefined;
      return { kind: 'reset', error };
    }
    if (/close/i.test(response.headers.connection ?? '')) {
      this.#socket!.end();
      this.#socket = undefined;
    }
    return { kind: 'response', response };
  }

  /** Closes the connection from this side. */
  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await new Promise<void>((resolve) => { this.#waiter = resolve; });
    return true;
  }

  async #readResponse(): Promise<WireResponse | undefined> {
    let end: number;
    while ((end = this.#buffer.indexOf('\r\n\r\n')) === -1) if (!(await this.#more()) && this.#buffer.indexOf('\r\n\r\n') === -1) return undefined;
    const [statusLine, ...lines] = this.#buffer.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    this.#buffer = this.#buffer.subarray(end + 4);
    let body: Buffer;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        let lineEnd: number;
        while ((lineEnd = this.#buffer.indexOf('\r\n')) === -1) if (!(await this.#more())) return undefined;
        const size = parseInt(this.#buffer.subarray(0, lineEnd).toString('latin1'), 16);
        while (this.#buffer.length < lineEnd + 2 + size + 2) if (!(await this.#more())) return undefined;
        parts.push(this.#buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        this.#buffer = this.#buffer.subarray(lineEnd + 2 + size + 2);
        if (size === 0) break;
      }
      body = Buffer.concat(parts);
    } else {
      const length = Number(headers['content-length'] ?? 0);
      while (this.#buffer.length < length) if (!(await this.#more())) return undefined;
      body = this.#buffer.subarray(0, length);
      this.#buffer = this.#buffer.subarray(length);
    }
    return { status, headers, body: body.toString('utf8') };
  }
}
