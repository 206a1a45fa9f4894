/**
 * A SAML test bed of real parts: fedgate's SAML bridge (createSamlBridge)
 * with a MemoryStore, real Accounts, Groups and Audit, served by a Koa app
 * on loopback the way app.ts dispatches `/saml/*`. The FederationHooks are
 * a fake that records finishLogin calls, reads the "logged-in account"
 * from a test cookie, and knows every interaction id except those starting
 * with `unknown` (the real hooks belong to the assembly).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import { Accounts, type Account } from '../../../src/accounts/accounts.ts';
import { Groups } from '../../../src/accounts/groups.ts';
import { fileConfigSchema, type Config } from '../../../src/config/index.ts';
import { createSamlBridge, type SamlBridge } from '../../../src/federation/saml/index.ts';
import type { FederationHooks, InteractionCheck } from '../../../src/federation/types.ts';
import { Audit, type StoredAuditEvent } from '../../../src/observability/audit.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStore } from '../../../src/store/index.ts';
import type { Store } from '../../../src/store/store.ts';
import { freePort, LogCapture } from '../../support/harness.ts';

/** A finishLogin call the fake hooks saw. */
export interface FinishCall {
  uid: string;
  account: Account;
  amr: string;
}

/** Options of {@link startTestbed}. */
export interface TestbedOptions {
  /** The `saml` section (input form: defaults apply); `enabled` defaults to true. */
  saml?: Record<string, unknown>;
  /** Share a store (and keys) with another test bed: two replicas. */
  store?: Store;
  keysDir?: string;
  /** Groups to create in the registry. */
  groups?: string[];
  /** Skip bridge.start() (tests of start itself). */
  noStart?: boolean;
  /** The issuer (default: this test bed's own loopback URL); replicas share one. */
  issuer?: string;
}

export interface Testbed {
  url: string;
  issuer: string;
  config: Config;
  store: Store;
  keysDir: string;
  accounts: Accounts;
  groups: Groups;
  audit: Audit;
  logs: LogCapture;
  bridge: SamlBridge;
  finished: FinishCall[];
  /** A fresh browser (its own cookies) pointed at this test bed. */
  browser(): Browser;
  /** Audit events so far, oldest first. */
  events(): Promise<StoredAuditEvent[]>;
  /** Parsed log lines so far. */
  logLines(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** One HTTP answer. */
export interface Answer {
  status: number;
  location: string | undefined;
  headers: Headers;
  text: string;
}

/** A cookie-keeping HTTP client that does not follow redirects. */
export class Browser {
  readonly base: string;
  readonly cookies = new Map<string, string>();

  constructor(base: string) {
    this.base = base;
  }

  async #send(path: string, init: RequestInit): Promise<Answer> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const response = await fetch(new URL(path, this.base), { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const [name, ...value] = pair!.split('=');
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired) this.cookies.delete(name!.trim());
      else this.cookies.set(name!.trim(), value.join('=').trim());
    }
    return { status: response.status, location: response.headers.get('location') ?? undefined, headers: response.headers, text: await response.text() };
  }

  get(path: string): Promise<Answer> {
    return this.#send(path, { method: 'GET' });
  }

  post(path: string, form: Record<string, string>): Promise<Answer> {
    return this.#send(path, { method: 'POST', body: new URLSearchParams(form), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }

  /** POST of an already form-encoded body (nothing to encode at sending time). */
  postEncoded(path: string, body: string): Promise<Answer> {
    return this.#send(path, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  }

  /** Pretend `account` is logged in (what the fake currentAccount reads). */
  loginAs(account: Account | undefined): void {
    if (account) this.cookies.set('test-account', account.id);
    else this.cookies.delete('test-account');
  }
}

/** Starts a test bed; see the module comment. */
export async function startTestbed(options: TestbedOptions = {}): Promise<Testbed> {
  const port = await freePort();
  const issuer = options.issuer ?? `http://127.0.0.1:${port}`;
  const keysDir = options.keysDir ?? await mkdtemp(join(tmpdir(), 'fedgate-saml-'));
  // A generous validation deadline unless a test sets one: on a CI machine saturated by parallel test files the
  // (niced) validation threads may wait long for a core, and a verdict must not turn into too_complex for that.
  const file = fileConfigSchema.parse({ issuer, keysDir, logLevel: 'debug', saml: { enabled: true, validation: { deadlineMs: 30_000 }, ...options.saml } });
  const config: Config = { ...file, issuer, port, redisUrl: undefined, production: false, demo: false, source: 'saml test bed', users: [] };
  const store = options.store ?? new MemoryStore();
  const logs = new LogCapture();
  const logger = createLogger('debug', logs);
  const audit = new Audit(store, logger, 10_000);
  const accounts = new Accounts(store);
  const groups = new Groups(store, accounts);
  await groups.seed((options.groups ?? []).map((path) => ({ path })));
  const finished: FinishCall[] = [];
  const hooks: FederationHooks & InteractionCheck = {
    // Interaction ids starting with `unknown` never existed; `gone` expires between /saml/login and completion.
    async interactionExists(uid) {
      return !uid.startsWith('unknown');
    },
    async finishLogin(ctx, uid, account, amr) {
      if (uid === 'gone') throw new Error('interaction not found');
      finished.push({ uid, account, amr });
      ctx.status = 303;
      ctx.redirect(`/interaction/${uid}/done`);
    },
    async currentAccount(ctx) {
      const id = ctx.cookies.get('test-account');
      return id ? accounts.findById(id) : undefined;
    },
  };
  const bridge = await createSamlBridge({ config, store, logger, audit, accounts, groups, hooks });
  if (!options.noStart) await bridge.start();

  const app = new Koa();
  app.silent = true;
  app.use(async (ctx, next) => {
    ctx.state.requestId = 'test-request';
    try {
      await next();
    } catch (err) {
      // What app.ts's boundary does with anything unexposed: a 500 (the tests assert there are none).
      ctx.status = 500;
      ctx.body = `server_error: ${(err as Error).message}`;
    }
  });
  app.use(async (ctx, next) => (ctx.path.startsWith('/saml/') ? bridge.routes(ctx, next) : next()));
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url, issuer, config, store, keysDir, accounts, groups, audit, logs, bridge, finished,
    browser: () => new Browser(url),
    async events() {
      return (await audit.recent(1000)).reverse();
    },
    logLines() {
      return logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async close() {
      await bridge.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await audit.flush();
      if (!options.store) await store.close();
      if (!options.keysDir) await rm(keysDir, { recursive: true, force: true });
    },
  };
}
