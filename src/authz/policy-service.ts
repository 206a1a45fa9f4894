import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { effectiveGroups, type Accounts } from '../accounts/accounts.ts';
import type { Groups } from '../accounts/groups.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import { scopeCovered } from '../scopes/wlcg.ts';
import { withLock } from '../store/lock.ts';
import { PolicyEngine } from './engine.ts';
import { isPathScope, objectMatch, scopeMatch } from './functions.ts';
import { formatPolicyCsv, hierarchyLines, lineKey, parsePolicyCsv, validateLine } from './rules.ts';
import { sortLines, StorePolicyAdapter } from './store-adapter.ts';
import { StoreWatcher, type PolicyChange } from './store-watcher.ts';
import { ACCESS_DOMAINS, EXCHANGE_BY_DOMAIN, EXCHANGE_DOMAIN, SCOPE_DOMAIN, type Decision, type DecisionRequest, type PolicyDecisionPoint, type PolicyLine } from './types.ts';
import { FedgateError } from '../util/errors.ts';

/** Set once the policy files have been loaded into the store: from then on the store holds the truth. */
const SEEDED_KEY = 'policy:seeded';
/** Serialises changes across replicas (an import is several writes). */
const LOCK_KEY = 'policy:lock';
const LOCK_TTL_SECONDS = 30;
const LOCK_WAIT_MS = 10_000;

/** A policy change was refused; `problems` says why, one line each. */
export class PolicyValidationError extends FedgateError {
  readonly code = 'invalid_policy';
  /** At most {@link MAX_REPORTED_PROBLEMS}, each at most {@link MAX_PROBLEM_LENGTH} characters: they quote the input back. */
  readonly problems: string[];
  constructor(problems: string[]) {
    const shown = problems.slice(0, MAX_REPORTED_PROBLEMS).map((p) => (p.length > MAX_PROBLEM_LENGTH ? `${p.slice(0, MAX_PROBLEM_LENGTH)}…` : p));
    if (problems.length > MAX_REPORTED_PROBLEMS) shown.push(`… and ${problems.length - MAX_REPORTED_PROBLEMS} more`);
    super('invalid_policy', shown.join('; '));
    this.problems = shown;
  }
}

/** How many problems of a refused change are reported (an answer, an audit event or a log line quotes them). */
const MAX_REPORTED_PROBLEMS = 20;
/** Longest problem reported: problems quote values of the input, which may be of any size. */
const MAX_PROBLEM_LENGTH = 300;

/** Another change held the policy lock for too long. */
export class PolicyBusyError extends FedgateError {
  readonly code = 'temporarily_unavailable';
  constructor() {
    super('temporarily_unavailable', 'another policy change is in progress; try again');
  }
}

export interface PolicyServiceDeps {
  config: Config;
  store: Store;
  logger: Logger;
  accounts: Accounts;
  groups: Groups;
  /** Audiences scope rules may name (besides `*`). */
  audienceExists: (audience: string) => boolean;
  /** Policy domains of the gateway's services, data sources included (default: `gateway.services`). */
  serviceDomains?: () => Iterable<string>;
}

/** Filters for listing stored lines. */
export interface PolicyFilter {
  ptype?: PolicyLine['ptype'];
  subject?: string;
  domain?: string;
}

/** What a change did: the lines really added and removed (duplicates and absent lines are not counted). */
export interface PolicyDiff {
  added: PolicyLine[];
  removed: PolicyLine[];
}

/** The subject a line is about: p → its subject, g → its member, g2 → none. */
function lineSubject(line: PolicyLine): string | undefined {
  return line.ptype === 'g2' ? undefined : line.values[0];
}

function lineDomain(line: PolicyLine): string | undefined {
  if (line.ptype === 'p') return line.values[1];
  if (line.ptype === 'g2') return line.values[2];
  return undefined;
}

/**
 * The policy administration and decision point of one replica: the stored
 * policy (a Casbin adapter on the store), its propagation (a Casbin watcher
 * on the store's pub/sub) and the indexed engine that answers decisions.
 *
 * Changes are written to the store, the version is raised, and a delta is
 * announced; other replicas apply the delta, or reload when they notice a
 * gap in versions (a missed message). A poll of the version is the safety
 * net under pub/sub, which does not replay messages after a reconnect.
 */
export class PolicyService implements PolicyDecisionPoint {
  readonly engine = new PolicyEngine();
  readonly adapter: StorePolicyAdapter;
  readonly watcher: StoreWatcher;
  readonly #deps: PolicyServiceDeps;
  #seenVersion = 0;
  #hierarchyKeys = new Set<string>();
  #reloading: Promise<void> | undefined;
  /** Checks that an OAuth client exists (set once the provider is built). */
  clientExists: (clientId: string) => Promise<boolean> = async () => false;

  constructor(deps: PolicyServiceDeps) {
    this.#deps = deps;
    this.adapter = new StorePolicyAdapter(deps.store);
    this.watcher = new StoreWatcher(deps.store);
  }

  /** Policy domains rules may name: the platform services', the gateway services' and data sources', the scope policy's and token exchange's. */
  domains(): Set<string> {
    const services = this.#deps.serviceDomains?.() ?? this.#deps.config.gateway.services.map((s) => s.domain ?? s.name);
    return new Set<string>([...ACCESS_DOMAINS, SCOPE_DOMAIN, EXCHANGE_DOMAIN, EXCHANGE_BY_DOMAIN, ...services]);
  }

  /** A number that changes with every policy, group, membership or account change this replica has seen. */
  get version(): number {
    return this.engine.version;
  }

  /** The policy's version in the store (`policy:version`), the same on every replica: what the admin API reports. */
  storedVersion(): Promise<number> {
    return this.watcher.currentVersion();
  }

  /**
   * Seeds the store from the policy files on the very first start, loads
   * the policy, and starts following changes.
   */
  async start(): Promise<void> {
    await this.#seed();
    this.watcher.onChange((change) => this.#onChange(change));
    await this.watcher.start();
    await this.reload();
    this.watcher.feed.pollVersion(this.#deps.config.policies.pollSeconds * 1000, () => this.#seenVersion, () => this.reload(),
      (err) => this.#deps.logger.warn({ err: { message: err.message } }, 'policy version check failed; keeping the current policy'));
  }

  async close(): Promise<void> {
    await this.watcher.close();
  }

  async #seed(): Promise<void> {
    const { config, logger, store } = this.#deps;
    if (await store.get(SEEDED_KEY)) return;
    const lines = await readPolicyDir(config.policies.dir);
    const syntax = await this.validate(lines, { references: false });
    if (syntax.length) throw new PolicyValidationError(syntax.map((p) => `${config.policies.dir}: ${p}`));
    // The files may name users and clients created later (or groups of another realm): kept, and said.
    const unknown = await this.validate(lines);
    if (unknown.length) logger.warn({ dir: config.policies.dir, problems: unknown.slice(0, 50) }, 'policy files name subjects that do not exist (yet); their rules are kept');
    // Only one replica seeds; the others load what it wrote (its announcement reaches them).
    if (!(await store.setIfAbsent(SEEDED_KEY, { at: new Date().toISOString() }))) return;
    await this.adapter.addLines(lines);
    await this.watcher.announce('reload');
    logger.info({ dir: config.policies.dir, lines: lines.length }, 'policy seeded from files');
    // The warnings above may run to pages; the verdict goes last, in one line an operator cannot miss.
    const inapplicable = new Set(unknown.map((p) => /^rule (\d+) /.exec(p)?.[1])).size;
    if (lines.length > 0 && inapplicable === lines.length) {
      logger.warn({ dir: config.policies.dir, lines: lines.length }, `none of the ${lines.length} policy lines seeded from ${config.policies.dir} applies to this configuration (each names a group, user, client or audience it does not have): no user gets resource scopes and the gateway allows nothing; point policies.dir at a policy directory written for this deployment`);
    } else if (inapplicable > 0) {
      logger.warn({ dir: config.policies.dir, lines: lines.length, inapplicable }, `${inapplicable} of the ${lines.length} policy lines seeded from ${config.policies.dir} name a group, user, client or audience this configuration does not have`);
    }
  }

  /** Loads the stored policy and the group hierarchy again. */
  async reload(): Promise<void> {
    // Concurrent triggers (a gap and the poll) share one reload.
    this.#reloading ??= (async () => {
      try {
        const version = await this.watcher.currentVersion();
        const [stored, paths] = await Promise.all([this.adapter.loadLines(), this.#deps.groups.paths()]);
        const hierarchy = hierarchyLines(paths);
        this.#hierarchyKeys = new Set(hierarchy.map(lineKey));
        this.engine.replaceAll([...stored, ...hierarchy]);
        this.#seenVersion = Math.max(this.#seenVersion, version);
      } finally {
        this.#reloading = undefined;
      }
    })();
    return this.#reloading;
  }

  #onChange(change: PolicyChange): void {
    if (change.version <= this.#seenVersion) return;
    const gap = change.version !== this.#seenVersion + 1;
    if (gap || change.kind === 'reload' || change.kind === 'groups') {
      this.reload().catch((err: Error) => this.#deps.logger.error({ err: { message: err.message } }, 'policy reload failed; keeping the current policy'));
      return;
    }
    this.#seenVersion = change.version;
    if (change.kind === 'invalidate') this.engine.invalidate();
    else this.#apply(change.add ?? [], change.remove ?? []);
  }

  #apply(add: PolicyLine[], remove: PolicyLine[]): void {
    // Hierarchy lines come from the group registry, never from stored rules.
    this.engine.remove(remove.filter((l) => !this.#hierarchyKeys.has(lineKey(l))));
    this.engine.add(add);
  }

  /** Applies a local change and announces it, reloading when other changes came in between. */
  async #commit(kind: PolicyChange['kind'], add: PolicyLine[] = [], remove: PolicyLine[] = []): Promise<void> {
    const version = await this.watcher.announce(kind, add, remove);
    if (version === this.#seenVersion + 1 && kind !== 'groups' && kind !== 'reload') {
      this.#seenVersion = version;
      if (kind === 'invalidate') this.engine.invalidate();
      else this.#apply(add, remove);
    } else {
      await this.reload();
    }
  }

  // Decisions.

  allowed(request: DecisionRequest): boolean {
    return this.engine.allowed(request);
  }

  explain(request: DecisionRequest): Decision {
    return this.engine.explain(request);
  }

  /**
   * Of `scopes` asked for an audience on behalf of an account, those the
   * scope policy allows (the rest are dropped silently, RFC 6749 §3.3).
   */
  allowedScopes(subject: { username: string; groups: readonly string[] }, audience: string, scopes: readonly string[]): string[] {
    return this.#allowedScopes({ subject: `user:${subject.username}`, groups: effectiveGroups(subject.groups) }, SCOPE_DOMAIN, audience, scopes);
  }

  /**
   * Of `scopes`, those the exchange policy lets client `clientId` carry into
   * a token for `audience` (RFC 8693 exchanges; domain `exchange`).
   */
  allowedExchangeScopes(clientId: string, audience: string, scopes: readonly string[]): string[] {
    return this.#allowedScopes({ subject: `client:${clientId}` }, EXCHANGE_DOMAIN, audience, scopes);
  }

  /**
   * Whether an allow rule naming exactly `action` (not `*`) applies to the
   * request: privileges that a blanket `*` rule must not confer
   * (impersonation, a lifetime past the subject token's) need one.
   */
  allowedExplicitly(request: DecisionRequest): boolean {
    const key = `x\u0000${this.engine.version}\u0000${request.subject}\u0000${(request.groups ?? []).join(',')}\u0000${request.domain}\u0000${request.object}\u0000${request.action}\u0000${(request.scopes ?? []).join(' ')}`;
    const memo = this.#memo.get(key);
    if (memo !== undefined) return memo as boolean;
    const answer = this.#allowedExplicitly(request);
    this.#remember(key, answer);
    return answer;
  }

  /** Answers that depend only on their inputs and the policy version (the version is part of every key). */
  readonly #memo = new Map<string, boolean | string[]>();

  #remember(key: string, value: boolean | string[]): void {
    if (this.#memo.size >= 10_000) this.#memo.clear();
    this.#memo.set(key, value);
  }

  #allowedExplicitly(request: DecisionRequest): boolean {
    const explanation = this.engine.explain(request).explanation;
    if (explanation?.outcome !== 'allow') return false;
    const principals = new Set(explanation.principals ?? [request.subject]);
    return this.engine.lines().some((l) => l.ptype === 'p' && l.values[1] === request.domain && l.values[3] === request.action
      && l.values[4] === 'allow' && principals.has(l.values[0]!) && objectMatch(request.object, l.values[2]!)
      && scopeMatch((request.scopes ?? []).join(' '), l.values[5] ?? '', request.object));
  }

  /** Whether any rule of `domain` names one of the subject's principals (is the subject known to that policy at all?). */
  hasRulesFor(request: Pick<DecisionRequest, 'subject' | 'groups'>, domain: string): boolean {
    const principals = new Set(this.engine.explain({ ...request, domain, object: '*', action: '*' }).explanation?.principals ?? [request.subject]);
    return this.engine.lines().some((l) => l.ptype === 'p' && l.values[1] === domain && principals.has(l.values[0]!));
  }

  #allowedScopes(subject: Pick<DecisionRequest, 'subject' | 'groups'>, domain: string, audience: string, scopes: readonly string[]): string[] {
    const key = `s\u0000${this.engine.version}\u0000${subject.subject}\u0000${(subject.groups ?? []).join(',')}\u0000${domain}\u0000${audience}\u0000${scopes.join(' ')}`;
    const memo = this.#memo.get(key);
    if (memo !== undefined) return [...memo as string[]];
    const answer = this.#computeAllowedScopes(subject, domain, audience, scopes);
    this.#remember(key, answer);
    return [...answer];
  }

  #computeAllowedScopes(subject: Pick<DecisionRequest, 'subject' | 'groups'>, domain: string, audience: string, scopes: readonly string[]): string[] {
    const request = { ...subject, domain, object: audience, scopes: [] };
    const allowed = scopes.filter((scope) => this.engine.allowed({ ...request, action: scope }));
    const denies = this.#scopeDenies(domain);
    if (!allowed.length || !denies.length) return allowed;
    // The model lets a deny remove its own scope and narrower ones. A wider
    // scope would carry the denied path along (storage.read:/store/atlas
    // covers /store/atlas/secret) to storages that trust the token alone, so
    // it is not granted either.
    const principals = new Set(this.engine.explain({ ...request, action: allowed[0]! }).explanation?.principals ?? [request.subject]);
    return allowed.filter((scope) => !denies.some((d) => principals.has(d.values[0]!) && objectMatch(audience, d.values[2]!) && scopeCovered(d.values[3]!, [scope])));
  }

  #denyCache = new Map<string, { version: number; lines: PolicyLine[] }>();

  /** Deny rules of a scope-granting domain on WLCG path scopes, per policy version. */
  #scopeDenies(domain: string): PolicyLine[] {
    let cached = this.#denyCache.get(domain);
    if (cached?.version !== this.engine.version) {
      const lines = this.engine.lines().filter((l) => l.ptype === 'p' && l.values[1] === domain && l.values[4] === 'deny' && isPathScope(l.values[3]!));
      cached = { version: this.engine.version, lines };
      this.#denyCache.set(domain, cached);
    }
    return cached.lines;
  }

  // Administration.

  /** Stored lines (the hierarchy fedgate adds is not stored), optionally filtered. */
  async list(filter: PolicyFilter = {}): Promise<PolicyLine[]> {
    return (await this.adapter.loadLines()).filter((line) => (!filter.ptype || line.ptype === filter.ptype)
      && (!filter.subject || lineSubject(line) === filter.subject)
      && (!filter.domain || lineDomain(line) === filter.domain));
  }

  async exportCsv(filter: PolicyFilter = {}): Promise<string> {
    return formatPolicyCsv(await this.list(filter));
  }

  /** Syntax and (unless told otherwise) referential checks: one human-readable problem per bad line. */
  async validate(lines: readonly PolicyLine[], options: { references?: boolean } = {}): Promise<string[]> {
    const domains = this.domains();
    const problems: string[] = [];
    const checked = new Map<string, string | undefined>();
    const subjectProblem = async (subject: string): Promise<string | undefined> => {
      if (checked.has(subject)) return checked.get(subject);
      let problem: string | undefined;
      if (subject.startsWith('user:')) {
        if (!(await this.#deps.accounts.findByUsername(subject.slice(5)))) problem = `user ${subject.slice(5)} does not exist`;
      } else if (subject.startsWith('client:')) {
        if (!(await this.clientExists(subject.slice(7)))) problem = `client ${subject.slice(7)} does not exist`;
      } else if (subject.startsWith('/')) {
        if (!(await this.#deps.groups.exists(subject))) problem = `group ${subject} does not exist`;
      }
      checked.set(subject, problem);
      return problem;
    };
    for (const [i, line] of lines.entries()) {
      const at = `rule ${i + 1} (${line.ptype}, ${line.values.join(', ')})`;
      const syntax = validateLine(line, domains);
      if (syntax) {
        problems.push(`${at}: ${syntax}`);
        continue;
      }
      if (options.references === false) continue;
      // In the exchange domain the issuer stands for ID tokens (impersonating a user as fedgate itself).
      const issuerInExchange = line.values[1] === EXCHANGE_DOMAIN && line.values[2] === this.#deps.config.issuer;
      if (line.ptype === 'p' && (line.values[1] === SCOPE_DOMAIN || line.values[1] === EXCHANGE_DOMAIN) && line.values[2] !== '*' && !issuerInExchange && !this.#deps.audienceExists(line.values[2]!)) {
        problems.push(`${at}: ${line.values[2]} is not the audience of a configured resource server${line.values[1] === EXCHANGE_DOMAIN ? ' (or the issuer, for ID tokens)' : ''}`);
      }
      const names = line.ptype === 'g' ? [line.values[0]!, line.values[1]!] : line.ptype === 'p' ? [line.values[0]!] : [];
      for (const name of names) {
        const problem = await subjectProblem(name);
        if (problem) problems.push(`${at}: ${problem}`);
      }
    }
    return problems;
  }

  #locked<T>(work: () => Promise<T>): Promise<T> {
    return withLock(this.#deps.store, LOCK_KEY, { ttlSeconds: LOCK_TTL_SECONDS, waitMs: LOCK_WAIT_MS, busy: () => new PolicyBusyError() }, work);
  }

  /** Replaces the stored lines matching `selects` with `wanted`, validated, in one announced change. */
  async #change(wanted: PolicyLine[], selects: (line: PolicyLine) => boolean): Promise<PolicyDiff> {
    const problems = await this.validate(wanted);
    if (problems.length) throw new PolicyValidationError(problems);
    return this.#locked(async () => {
      const current = await this.adapter.loadLines();
      const currentKeys = new Set(current.map(lineKey));
      const wantedKeys = new Set(wanted.map(lineKey));
      const removed = current.filter((l) => selects(l) && !wantedKeys.has(lineKey(l)));
      const seen = new Set<string>();
      const added = wanted.filter((l) => {
        const key = lineKey(l);
        if (currentKeys.has(key) || seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      if (!added.length && !removed.length) return { added, removed };
      await this.adapter.removeLines(removed);
      await this.adapter.addLines(added);
      await this.#commit('delta', added, removed);
      return { added, removed };
    });
  }

  /** Adds lines (already present ones are left as they are). */
  async add(lines: PolicyLine[]): Promise<PolicyDiff> {
    return this.#change(lines, () => false);
  }

  /** Removes lines; lines that are not stored are ignored. */
  async remove(lines: PolicyLine[]): Promise<PolicyDiff> {
    const keys = new Set(lines.map(lineKey));
    return this.#change([], (l) => keys.has(lineKey(l)));
  }

  /** Replaces every access and scope rule (p lines) of one subject. */
  async replaceSubject(subject: string, lines: PolicyLine[]): Promise<PolicyDiff> {
    const foreign = lines.filter((l) => l.ptype !== 'p' || l.values[0] !== subject);
    if (foreign.length) throw new PolicyValidationError([`every rule must be a p rule for ${subject}`]);
    return this.#change(lines, (l) => l.ptype === 'p' && l.values[0] === subject);
  }

  /** Imports CSV: `replace` makes it the whole policy, `merge` adds to it. */
  async importCsv(text: string, mode: 'replace' | 'merge'): Promise<PolicyDiff> {
    const { lines, problems } = parsePolicyCsv(text, 'import');
    if (problems.length) throw new PolicyValidationError(problems);
    return this.#change(lines, () => mode === 'replace');
  }

  /** Renames a subject in every stored line (a group renamed, with its subtree). */
  async renameSubjects(renames: ReadonlyArray<[string, string]>): Promise<PolicyDiff> {
    const map = new Map(renames);
    return this.#locked(async () => {
      const current = await this.adapter.loadLines();
      const removed: PolicyLine[] = [];
      const added: PolicyLine[] = [];
      for (const line of current) {
        const names = line.ptype === 'g' ? [0, 1] : line.ptype === 'p' ? [0] : [];
        if (!names.some((i) => map.has(line.values[i]!))) continue;
        removed.push(line);
        added.push({ ptype: line.ptype, values: line.values.map((v, i) => (names.includes(i) ? map.get(v) ?? v : v)) });
      }
      await this.adapter.removeLines(removed);
      await this.adapter.addLines(added);
      if (added.length || removed.length) await this.#commit('delta', added, removed);
      return { added, removed };
    });
  }

  /** Stored lines that name `subject` (as p subject, or either side of g). */
  async linesNaming(subject: string): Promise<PolicyLine[]> {
    return (await this.adapter.loadLines()).filter((l) => (l.ptype === 'p' && l.values[0] === subject)
      || (l.ptype === 'g' && (l.values[0] === subject || l.values[1] === subject)));
  }

  /** Memberships or account states changed: every replica drops cached decisions and identities. */
  async membershipsChanged(): Promise<void> {
    await this.#commit('invalidate');
  }

  /** Groups were created, renamed or deleted: every replica rebuilds the hierarchy. */
  async groupsChanged(): Promise<void> {
    await this.#commit('groups');
  }
}

/** Every `*.csv` in the policy directory, in name order. */
export async function readPolicyDir(dir: string): Promise<PolicyLine[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.csv')).sort();
  } catch (err) {
    throw new PolicyValidationError([`${dir}: cannot read the policy directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  const lines: PolicyLine[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const parsed = parsePolicyCsv(await readFile(join(dir, name), 'utf8'), name);
    lines.push(...parsed.lines);
    problems.push(...parsed.problems);
  }
  if (problems.length) throw new PolicyValidationError(problems);
  return sortLines(lines);
}
