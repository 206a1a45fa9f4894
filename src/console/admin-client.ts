/**
 * The console's one way to read and change anything: the admin API, over
 * HTTP, with the signed-in user's admin token. The API holds every rule and
 * audits every change with its actor; the console only shows and asks.
 */
import { FedgateError } from '../util/errors.ts';

/** A refusal of the admin API (`{error, error_description}`), or its absence. */
export class AdminApiError extends FedgateError {
  readonly problems: string[];
  constructor(status: number, error: string, description: string, problems: string[] = []) {
    // The console words its own pages from it (console/kit.ts); escaping, it is no answer of this request's own.
    super(error, description, { status, expose: false });
    this.problems = problems;
  }
}

/** Options of one call. */
export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined> | undefined;
  json?: unknown;
  /** A text body (CSV import). */
  text?: string;
  /** Ask for CSV instead of JSON (answers the text). */
  csv?: boolean;
}

/** How long the console waits for the admin API. */
const TIMEOUT_MS = 15_000;

/** The admin API at `base` (`<issuer>/admin/api`) for one token. */
export class AdminClient {
  readonly #base: string;
  readonly #token: string;

  constructor(base: string, token: string) {
    this.#base = base;
    this.#token = token;
  }

  /** A URL path segment (group paths go in as `%2Fatlas%2Fprod`). */
  static segment(value: string): string {
    return encodeURIComponent(value);
  }

  async call<T = Record<string, unknown>>(method: string, path: string, options: CallOptions = {}): Promise<T> {
    const url = new URL(`${this.#base}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: options.csv ? 'text/csv' : 'application/json' };
    let body: string | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.text !== undefined) {
      headers['content-type'] = 'text/csv';
      body = options.text;
    }
    const res = await fetch(url, { method, headers, body, redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.text();
    if (!res.ok) {
      let parsed: { error?: unknown; error_description?: unknown; problems?: unknown } = {};
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        // Not the API's JSON (a proxy, a 404 of a route not there): the status says it.
      }
      const problems = Array.isArray(parsed.problems) ? parsed.problems.map(String) : [];
      throw new AdminApiError(res.status, typeof parsed.error === 'string' ? parsed.error : `http_${res.status}`,
        typeof parsed.error_description === 'string' ? parsed.error_description : `the admin API answered ${res.status}`, problems);
    }
    if (options.csv) return text as T;
    return (text ? JSON.parse(text) : {}) as T;
  }

  get<T = Record<string, unknown>>(path: string, query?: CallOptions['query']): Promise<T> {
    return this.call<T>('GET', path, { query });
  }
  post<T = Record<string, unknown>>(path: string, json?: unknown): Promise<T> {
    return this.call<T>('POST', path, { json: json ?? {} });
  }
  put<T = Record<string, unknown>>(path: string, json?: unknown): Promise<T> {
    return this.call<T>('PUT', path, json === undefined ? {} : { json });
  }
  patch<T = Record<string, unknown>>(path: string, json: unknown): Promise<T> {
    return this.call<T>('PATCH', path, { json });
  }
  delete<T = Record<string, unknown>>(path: string, json?: unknown): Promise<T> {
    return this.call<T>('DELETE', path, json === undefined ? {} : { json });
  }
}

/** A refusal as a person reads it: what the API said, with a plain lead for the common codes. */
export function plainRefusal(err: AdminApiError): string {
  const lead: Record<string, string> = {
    group_not_empty: 'The group is still in use.',
    group_exists: 'A group with that path already exists.',
    not_found: 'It does not exist (any more).',
    invalid_request: 'The change was refused.',
    access_denied: 'You may not do this.',
    insufficient_scope: 'You may not do this.',
    temporarily_unavailable: 'fedgate is busy; try again in a moment.',
  };
  // A sentence starts with a capital; a description that starts with a name or a location (`import:2: ...`) stays as it is.
  const description = /^[a-z]+ /.test(err.message) ? err.message.charAt(0).toUpperCase() + err.message.slice(1) : err.message;
  const text = `${lead[err.error] ?? 'The change was refused.'} ${description.endsWith('.') ? description : `${description}.`}`;
  return err.problems.length ? `${text} ${err.problems.join(' ')}` : text;
}
