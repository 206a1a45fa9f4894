/**
 * The console's own session: a random id in an HttpOnly cookie scoped to
 * `/admin`, and the record behind it in the store (so that any replica
 * serves the next request). It is separate from oidc-provider's session and
 * from the account page: signing out of the console ends only this.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';

/**
 * The part of fedgate's store the sessions use (the Store interface of
 * src/store fits it; the console reaches nothing else of storage).
 */
export interface SessionStore {
  get<T = unknown>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  replace(key: string, value: unknown): Promise<boolean>;
  delete(key: string): Promise<boolean>;
}

/** The console session cookie. */
export const SESSION_COOKIE = 'fedgate.console';

/** What a console session holds. */
export interface ConsoleSession {
  /** The admin API access token (opaque, audience `<issuer>/admin/api`, scope `fedgate.admin`). */
  accessToken: string;
  /** When the access token expires (seconds since the epoch); the session ends with it. */
  expiresAt: number;
  /** Who signed in, as the admin API's `GET /me` says. */
  username: string;
  admin: boolean;
  /** Groups this user manages (their subgroups included). */
  manages: string[];
  /** The synchronizer token every form of this session repeats. */
  csrf: string;
  /** A message for the next page (after a change), shown once. */
  flash?: { kind: 'notice' | 'error'; text: string } | undefined;
}

/** Never a session shorter than this (a token about to expire is renewed by signing in again). */
const MIN_TTL_SECONDS = 60;

/** Store key of a session: the cookie value is hashed, so the store never holds a usable cookie. */
function keyOf(id: string): string {
  return `console:session:${createHash('sha256').update(id).digest('base64url')}`;
}

function cookieId(ctx: Context): string | undefined {
  const id = ctx.cookies.get(SESSION_COOKIE);
  return id && /^[A-Za-z0-9_-]{43}$/.test(id) ? id : undefined;
}

/** Console sessions in the store. */
export class ConsoleSessions {
  readonly #store: SessionStore;
  readonly #secure: boolean;

  constructor(store: SessionStore, secure: boolean) {
    this.#store = store;
    this.#secure = secure;
  }

  /** The browser's live session (its token not yet expired), if any. */
  async current(ctx: Context): Promise<ConsoleSession | undefined> {
    const id = cookieId(ctx);
    if (!id) return undefined;
    const session = await this.#store.get<ConsoleSession>(keyOf(id));
    if (!session || session.expiresAt <= Date.now() / 1000 + 5) return undefined;
    return session;
  }

  /** Starts a session for this browser (a new id: never one the browser brought along). */
  async start(ctx: Context, session: Omit<ConsoleSession, 'csrf'>): Promise<ConsoleSession> {
    const previous = cookieId(ctx);
    if (previous) await this.#store.delete(keyOf(previous));
    const id = randomBytes(32).toString('base64url');
    const full: ConsoleSession = { ...session, csrf: randomBytes(32).toString('base64url') };
    const ttl = Math.max(MIN_TTL_SECONDS, Math.floor(session.expiresAt - Date.now() / 1000));
    await this.#store.set(keyOf(id), full, ttl);
    ctx.cookies.set(SESSION_COOKIE, id, { httpOnly: true, sameSite: 'lax', secure: this.#secure, path: '/admin', overwrite: true });
    return full;
  }

  /** Changes the session (keeps its time to live). */
  async update(ctx: Context, session: ConsoleSession): Promise<void> {
    const id = cookieId(ctx);
    if (id) await this.#store.replace(keyOf(id), session);
  }

  /** Ends the browser's session. */
  async end(ctx: Context): Promise<void> {
    const id = cookieId(ctx);
    if (id) await this.#store.delete(keyOf(id));
    ctx.cookies.set(SESSION_COOKIE, null, { path: '/admin', secure: this.#secure, overwrite: true });
  }

  /** Takes the session's one-time message, if any. */
  async takeFlash(ctx: Context, session: ConsoleSession): Promise<ConsoleSession['flash']> {
    const flash = session.flash;
    if (!flash) return undefined;
    session.flash = undefined;
    await this.update(ctx, session);
    return flash;
  }
}

/** Whether a submitted form token is the session's (constant time). */
export function csrfValid(session: ConsoleSession, submitted: unknown): boolean {
  return typeof submitted === 'string' && submitted.length === session.csrf.length
    && timingSafeEqual(Buffer.from(submitted), Buffer.from(session.csrf));
}
