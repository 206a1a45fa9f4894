/**
 * What every console section uses: rendering in the console layout, the
 * signed-in session, the admin API client, and the answers after a form
 * (a one-time message, then 303 back to a page).
 */
import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { sendPage } from '../http/page.ts';
import { html, type SafeHtml } from '../views/html.ts';
import { AdminApiError, AdminClient, plainRefusal } from './admin-client.ts';
import { consoleLayout, type SectionId } from './layout.ts';
import { csrfValid, type ConsoleSession, type ConsoleSessions } from './session.ts';

export interface RenderOptions {
  title: string;
  section?: SectionId | undefined;
  body: SafeHtml;
  status?: number;
}

/** A form's fields (the first value of each name). */
export type FormFields = Record<string, string>;

export interface ConsoleKit {
  /** `<issuer>/admin/api`. */
  readonly apiBase: string;
  readonly sessions: ConsoleSessions;
  /** The signed-in session of this request (routes registered with `page`/`action` always have one). */
  session(ctx: Context): ConsoleSession;
  api(ctx: Context): AdminClient;
  render(ctx: Context, options: RenderOptions): Promise<void>;
  /** A page (GET) that needs a session; `adminOnly` pages refuse group managers. */
  page(router: Router, path: string, handler: (ctx: Context) => Promise<void>, options?: { adminOnly?: boolean }): void;
  /** A form target (POST): session and CSRF checked before `handler` runs. */
  action(router: Router, path: string, handler: (ctx: Context, fields: FormFields) => Promise<void>, options?: { adminOnly?: boolean }): void;
  /** After a change: a message for the next page and 303 to `location`. */
  done(ctx: Context, location: string, text: string): Promise<void>;
  /** After a refusal: the API's reason in plain words on the next page, 303 to `location`. */
  refused(ctx: Context, location: string, err: unknown): Promise<void>;
  /** Shows an error page inside the console. */
  errorPage(ctx: Context, status: number, title: string, message: string | SafeHtml, section?: SectionId): Promise<void>;
}

export interface KitDeps {
  apiBase: string;
  sessions: ConsoleSessions;
  form: Middleware;
  /** Starts signing in (GET without a session). */
  signIn(ctx: Context): void;
}

/** Builds the kit the sections share. */
export function createKit(deps: KitDeps): ConsoleKit {
  const { apiBase, sessions, form } = deps;
  const sessionOf = (ctx: Context) => ctx.state.consoleSession as ConsoleSession;

  const kit: ConsoleKit = {
    apiBase,
    sessions,
    session: sessionOf,
    api: (ctx) => new AdminClient(apiBase, sessionOf(ctx).accessToken),
    async render(ctx, { title, section, body, status = 200 }) {
      const session = ctx.state.consoleSession as ConsoleSession | undefined;
      const flash = session ? await sessions.takeFlash(ctx, session) : undefined;
      sendPage(ctx, (nonce) => consoleLayout({
        nonce, title, section, body, flash,
        user: session ? { username: session.username, admin: session.admin, csrf: session.csrf } : undefined,
      }), status, { scripts: true });
    },
    page(router, path, handler, options = {}) {
      router.get(path, async (ctx) => {
        const session = await sessions.current(ctx);
        if (!session) return deps.signIn(ctx);
        ctx.state.consoleSession = session;
        if (options.adminOnly && !session.admin) return adminOnly(ctx);
        await guarded(ctx, () => handler(ctx));
      });
    },
    action(router, path, handler, options = {}) {
      router.post(path, form, async (ctx) => {
        const fields = formFields(ctx.request.body);
        const session = await sessions.current(ctx);
        if (!session) {
          return kit.errorPage(ctx, 401, 'Signed out', html`Your console session has ended, so nothing was changed. <a href="/admin">Sign in again</a>.`);
        }
        ctx.state.consoleSession = session;
        if (!csrfValid(session, fields.csrf)) {
          return kit.errorPage(ctx, 403, 'Form expired', html`The form was not sent from this console session, so nothing was changed. Go back, reload the page and try again.`);
        }
        if (options.adminOnly && !session.admin) return adminOnly(ctx);
        await guarded(ctx, () => handler(ctx, fields));
      });
    },
    async done(ctx, location, text) {
      const session = sessionOf(ctx);
      session.flash = { kind: 'notice', text };
      await sessions.update(ctx, session);
      ctx.status = 303;
      ctx.redirect(location);
    },
    async refused(ctx, location, err) {
      if (!(err instanceof AdminApiError) || err.status === 401) throw err;
      const session = sessionOf(ctx);
      session.flash = { kind: 'error', text: plainRefusal(err) };
      await sessions.update(ctx, session);
      ctx.status = 303;
      ctx.redirect(location);
    },
    async errorPage(ctx, status, title, message, section) {
      await kit.render(ctx, { title, section, status, body: html`<h1>${title}</h1><div role="alert"><p>${message}</p></div>` });
    },
  };

  const adminOnly = (ctx: Context) => kit.errorPage(ctx, 403, 'Administrators only',
    'This part of the console is for fedgate administrators. As a group manager you can manage your groups and their membership requests.');

  /** API refusals not handled by a page: a signed-out token starts over, the rest is shown in plain words. */
  const guarded = async (ctx: Context, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      if (!(err instanceof AdminApiError)) throw err;
      if (err.status === 401) {
        await sessions.end(ctx);
        if (ctx.method === 'GET') return deps.signIn(ctx);
        return kit.errorPage(ctx, 401, 'Signed out', html`Your admin token is no longer valid, so nothing was changed. <a href="/admin">Sign in again</a>.`);
      }
      if (err.status === 403) return kit.errorPage(ctx, 403, 'Not allowed', plainRefusal(err));
      if (err.status === 404 && err.error === 'http_404') {
        return kit.errorPage(ctx, 404, 'Not available', 'This fedgate does not offer that part of the admin API.');
      }
      return kit.errorPage(ctx, err.status >= 500 ? 502 : err.status, 'Refused', plainRefusal(err));
    }
  };
  return kit;
}

function formFields(body: unknown): FormFields {
  const out: FormFields = {};
  if (!body || typeof body !== 'object') return out;
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') out[key] = first;
  }
  return out;
}

/** Every value of a repeated form field. */
export function allValues(body: unknown, name: string): string[] {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}
