/**
 * Policy line syntax: the CSV files in policies/ and the admin API's
 * import/export, canonical line identities, syntax validation, and the
 * group hierarchy lines fedgate derives from group paths.
 */
import { storageScopeProblem } from '../scopes/wlcg.ts';
import { EXCHANGE_BY_DOMAIN, EXCHANGE_DOMAIN, SCOPE_DOMAIN, type PolicyLine } from './types.ts';

/** Values per line type, as the model declares them. */
const ARITY: Record<PolicyLine['ptype'], number> = { p: 6, g: 2, g2: 3 };
const VALUE_NAMES: Record<PolicyLine['ptype'], string> = {
  p: 'subject, domain, object, action, effect, scope',
  g: 'member, group',
  g2: 'method, operation, domain',
};

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const OPERATION = /^[a-z][a-z0-9_.-]*$/;
/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const GROUP_SEGMENT = /^[A-Za-z0-9._-]+$/;
const PRINCIPAL = /^(?:user|client):[^\s\x00-\x1f\x7f]+$/;
const WHITESPACE = /\s/;
const UNTERMINATED = 'unterminated quoted value';

function isPtype(value: string): value is PolicyLine['ptype'] {
  return value === 'p' || value === 'g' || value === 'g2';
}

/**
 * A canonical string identity of a line: two lines are the same rule
 * exactly when their keys are equal (Casbin compares the value arrays).
 */
export function lineKey(line: PolicyLine): string {
  return JSON.stringify([line.ptype, ...line.values]);
}

/** One CSV record: its values and the line it starts on. */
interface CsvRecord {
  line: number;
  values: string[];
}

/**
 * Splits CSV text into records: `#` comment lines and blank lines are
 * skipped, unquoted values are trimmed, double-quoted values are kept
 * verbatim (`""` is a quote and they may span lines).
 */
function csvRecords(text: string, problem: (line: number, reason: string) => void): CsvRecord[] {
  const records: CsvRecord[] = [];
  const n = text.length;
  let i = 0;
  let line = 1;
  const skipLine = () => {
    while (i < n && text[i] !== '\n') i++;
    if (i < n) {
      i++;
      line++;
    }
  };
  while (i < n) {
    let j = i;
    while (j < n && (text[j] === ' ' || text[j] === '\t' || text[j] === '\r')) j++;
    if (j >= n) break;
    if (text[j] === '\n' || text[j] === '#') {
      i = j;
      skipLine();
      continue;
    }
    const start = line;
    const values: string[] = [];
    let failed: string | undefined;
    for (;;) {
      while (i < n && (text[i] === ' ' || text[i] === '\t')) i++;
      if (text[i] === '"') {
        i++;
        let value = '';
        let closed = false;
        while (i < n) {
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            closed = true;
            break;
          }
          if (c === '\n') line++;
          value += c;
          i++;
        }
        if (!closed) {
          failed = UNTERMINATED;
          break;
        }
        while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\r')) i++;
        values.push(value);
        if (i < n && text[i] !== ',' && text[i] !== '\n') {
          failed = 'unexpected text after a closing quote';
          break;
        }
      } else {
        let end = i;
        while (end < n && text[end] !== ',' && text[end] !== '\n') end++;
        const raw = text.slice(i, end);
        i = end;
        if (raw.includes('"')) {
          failed = 'a value with a quote must be quoted as a whole ("a ""b"" c")';
          break;
        }
        values.push(raw.trim());
      }
      if (i < n && text[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    if (failed) {
      problem(failed === UNTERMINATED ? start : line, failed);
      skipLine();
      continue;
    }
    records.push({ line: start, values });
    skipLine();
  }
  return records;
}

/**
 * Parses policy CSV (`p, /cms, data, /store/cms/**, read, allow, storage.read`).
 * Lines starting with `#` and blank lines are skipped; values are trimmed;
 * double-quoted values keep commas, quotes (`""`) and spaces. A `p` line
 * with five values gets an empty required scope. Malformed lines are left
 * out and reported as `<source>:<line>: <reason>`. Values are not validated
 * here: see {@link validateLine}.
 */
export function parsePolicyCsv(text: string, source: string): { lines: PolicyLine[]; problems: string[] } {
  const problems: string[] = [];
  const problem = (line: number, reason: string) => problems.push(`${source}:${line}: ${reason}`);
  const lines: PolicyLine[] = [];
  // A byte order mark some editors write would otherwise stick to the first value.
  for (const record of csvRecords(text.startsWith('\uFEFF') ? text.slice(1) : text, problem)) {
    const [ptype, ...values] = record.values;
    if (ptype === undefined || !isPtype(ptype)) {
      problem(record.line, `unknown line type ${JSON.stringify(ptype ?? '')} (expected p, g or g2)`);
      continue;
    }
    if (ptype === 'p' && values.length === 5) values.push('');
    if (values.length !== ARITY[ptype]) {
      problem(record.line, `${ptype} needs ${ARITY[ptype]} values (${VALUE_NAMES[ptype]}), got ${values.length}`);
      continue;
    }
    lines.push({ ptype, values });
  }
  return { lines, problems };
}

function csvValue(value: string): string {
  if (/[",\n\r]/.test(value) || value !== value.trim()) return `"${value.replaceAll('"', '""')}"`;
  return value;
}

/** Writes lines as policy CSV that {@link parsePolicyCsv} reads back unchanged. */
export function formatPolicyCsv(lines: readonly PolicyLine[]): string {
  return lines.map((line) => `${[line.ptype, ...line.values].map(csvValue).join(', ').trimEnd()}\n`).join('');
}

/** A group path: `/a/b` with segments of letters, digits, `.`, `_` and `-` (never `.` or `..`). */
export function isGroupPath(value: string): boolean {
  if (value[0] !== '/') return false;
  const segments = value.slice(1).split('/');
  return segments.every((s) => GROUP_SEGMENT.test(s) && s !== '.' && s !== '..');
}

function subjectProblem(what: string, value: string): string | undefined {
  if (PRINCIPAL.test(value) || isGroupPath(value)) return undefined;
  return `invalid ${what} ${JSON.stringify(value)}: expected user:<name>, client:<id> or a group path such as /cms/production`;
}

function pathPatternProblem(value: string): string | undefined {
  if (value === '*' || value === '/') return undefined;
  const invalid = (why: string) => `invalid object pattern ${JSON.stringify(value)}: ${why}`;
  if (value[0] !== '/') return invalid('expected * or a path pattern starting with /');
  if (WHITESPACE.test(value)) return invalid('it contains whitespace');
  const segments = value.slice(1).split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment === '') return invalid('it has an empty segment (// or a trailing /)');
    if (segment === '.' || segment === '..') return invalid('it has a . or .. segment');
    if (segment === '**' && i !== segments.length - 1) return invalid('** is only allowed as the last segment');
  }
  return undefined;
}

function audienceProblem(value: string): string | undefined {
  if (value === '*' || (!WHITESPACE.test(value) && URL.canParse(value))) return undefined;
  return `invalid audience ${JSON.stringify(value)}: expected * or an absolute URI`;
}

/** Exchange modes (RFC 8693 §1.1): with an actor token (delegation) or without (impersonation). */
export const EXCHANGE_MODES = ['delegate', 'impersonate'] as const;
/** Actions of the `exchange` domain besides scopes: the modes, a lifetime past the subject token's, refresh tokens. */
const EXCHANGE_ACTIONS = new Set<string>([...EXCHANGE_MODES, 'outlive', 'offline_access']);

function exchangeByObjectProblem(value: string): string | undefined {
  if (value === '*' || /^client:[^\s\x00-\x1f\x7f]+$/.test(value)) return undefined;
  return `invalid object ${JSON.stringify(value)}: in ${EXCHANGE_BY_DOMAIN}, expected client:<id> (the client exchanging) or *`;
}

function exchangeActionProblem(domain: string, value: string): string | undefined {
  if (value === '*') return undefined;
  if (domain === EXCHANGE_BY_DOMAIN) {
    return (EXCHANGE_MODES as readonly string[]).includes(value) ? undefined : `invalid action ${JSON.stringify(value)}: in ${EXCHANGE_BY_DOMAIN}, expected delegate, impersonate or *`;
  }
  if (EXCHANGE_ACTIONS.has(value) || SCOPE_TOKEN.test(value)) return undefined;
  return `invalid action ${JSON.stringify(value)}: in ${EXCHANGE_DOMAIN}, expected delegate, impersonate, outlive, offline_access, a scope or *`;
}

/** A storage scope in a rule (action or required scope) must name its path in normal form, as tokens must (src/scopes). */
function scopePathProblem(what: string, value: string): string | undefined {
  const problem = storageScopeProblem(value);
  return problem === undefined ? undefined : `invalid ${what} ${JSON.stringify(value)}: the storage path is not in normal form (${problem})`;
}

function accessActionProblem(value: string): string | undefined {
  if (value === '*' || HTTP_METHODS.has(value) || OPERATION.test(value)) return undefined;
  return `invalid action ${JSON.stringify(value)}: expected *, an HTTP method in upper case (${[...HTTP_METHODS].join(' ')}) or an operation name such as read`;
}

function domainProblem(value: string, domains: ReadonlySet<string>): string | undefined {
  if (domains.has(value)) return undefined;
  return `unknown domain ${JSON.stringify(value)} (known: ${[...domains].join(', ')})`;
}

/**
 * Checks a line's syntax; returns a human-readable reason when it is
 * invalid, `undefined` when it is fine. Whether the users, clients and
 * groups it names exist is not checked here.
 *
 * - `p`: subject (`user:<name>`, `client:<id>` or a group path), a domain
 *   of `domains`, an object (`*` or a path pattern; in the `scopes` domain
 *   `*` or an absolute URI), an action (`*`, an upper-case HTTP method or
 *   an operation name; in the `scopes` domain a scope), `allow` or `deny`,
 *   and an optional required scope (never on a deny rule).
 * - `g`: member subject, group path.
 * - `g2`: HTTP method, operation name, domain.
 */
export function validateLine(line: PolicyLine, domains: ReadonlySet<string>): string | undefined {
  const { ptype, values } = line;
  if (!isPtype(ptype)) return `unknown line type ${JSON.stringify(ptype)} (expected p, g or g2)`;
  if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) return `${ptype} values must be strings`;
  if (values.length !== ARITY[ptype]) return `${ptype} needs ${ARITY[ptype]} values (${VALUE_NAMES[ptype]}), got ${values.length}`;
  if (ptype === 'g') {
    const [member, group] = values as [string, string];
    return subjectProblem('member', member)
      ?? (isGroupPath(group) ? undefined : `invalid group ${JSON.stringify(group)}: expected a group path such as /cms`);
  }
  if (ptype === 'g2') {
    const [method, operation, domain] = values as [string, string, string];
    if (!HTTP_METHODS.has(method)) return `invalid method ${JSON.stringify(method)}: expected an HTTP method in upper case (${[...HTTP_METHODS].join(' ')})`;
    if (!OPERATION.test(operation)) return `invalid operation ${JSON.stringify(operation)}: expected a name of lower-case letters, digits, _ . - starting with a letter`;
    return domainProblem(domain, domains);
  }
  const [subject, domain, object, action, effect, scope] = values as [string, string, string, string, string, string];
  const scopes = domain === SCOPE_DOMAIN;
  const exchange = domain === EXCHANGE_DOMAIN || domain === EXCHANGE_BY_DOMAIN;
  const objectProblem = domain === EXCHANGE_BY_DOMAIN ? exchangeByObjectProblem : scopes || exchange ? audienceProblem : pathPatternProblem;
  return subjectProblem('subject', subject)
    ?? domainProblem(domain, domains)
    ?? objectProblem(object)
    ?? (exchange ? exchangeActionProblem(domain, action)
      : scopes ? (SCOPE_TOKEN.test(action) ? undefined : `invalid action ${JSON.stringify(action)}: expected * or a scope (no spaces or quotes)`)
      : accessActionProblem(action))
    ?? (domain === EXCHANGE_DOMAIN && !subject.startsWith('client:') ? `a rule in ${EXCHANGE_DOMAIN} is about the client that exchanges: its subject must be client:<id>` : undefined)
    ?? (effect === 'allow' || effect === 'deny' ? undefined : `invalid effect ${JSON.stringify(effect)}: expected allow or deny`)
    ?? (scope === '' || SCOPE_TOKEN.test(scope) ? undefined : `invalid required scope ${JSON.stringify(scope)}: expected a scope (no spaces or quotes) or nothing`)
    ?? scopePathProblem('action', action)
    ?? scopePathProblem('required scope', scope)
    ?? (effect === 'deny' && scope !== '' ? `a deny rule cannot require a scope (${JSON.stringify(scope)}): it would stop applying to tokens without it` : undefined);
}

/**
 * The group hierarchy as `g` lines: every group path is a member of its
 * parent path (`g, /cms/production, /cms`), including the parents of paths
 * the list does not name. Invalid paths are skipped; duplicates appear once.
 *
 * Casbin follows at most 10 `g` links, so a member of a group reaches at
 * most the 9 nearest ancestors of that group through these lines.
 */
export function hierarchyLines(groupPaths: readonly string[]): PolicyLine[] {
  const lines: PolicyLine[] = [];
  const seen = new Set<string>();
  for (const path of groupPaths) {
    if (!isGroupPath(path)) continue;
    let child = path;
    for (let cut = child.lastIndexOf('/'); cut > 0; cut = child.lastIndexOf('/')) {
      if (seen.has(child)) break;
      seen.add(child);
      const parent = child.slice(0, cut);
      lines.push({ ptype: 'g', values: [child, parent] });
      child = parent;
    }
  }
  return lines;
}
