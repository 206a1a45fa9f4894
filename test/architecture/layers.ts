/**
 * fedgate's layers: the one rule table (the source of truth that
 * docs/architecture.md points at) and the import graph it is checked on.
 *
 * `test/architecture/layers.test.ts` runs the check in `npm test`;
 * `node test/architecture/layers.ts` prints the folder graph, the imports that
 * break a rule and the folder-level cycles (the figures issue 16 asks for).
 *
 * Written by hand rather than with dependency-cruiser: the whole check is one
 * pass of TypeScript's own import scanner (`ts.preProcessFile`, which sees
 * static, type-only, re-exported and dynamic imports) over src/, and the rule
 * table stays a plain list a reader can take in at once.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/**
 * The layers, lowest first. A unit (a folder of src/, `federation/saml` and
 * `federation/x509` each on their own, the top-level files by name) may import
 * only units of a LOWER layer: arrows point down, and the units of one layer
 * know nothing of each other.
 */
export const LAYERS: ReadonlyArray<{ name: string; units: readonly string[]; holds: string }> = [
  { name: 'grammar', units: ['util', 'scopes'], holds: 'pure helpers and the WLCG scope grammar' },
  { name: 'configuration', units: ['config'], holds: 'the schema, the loader and the fixed names (config/names.ts)' },
  { name: 'storage', units: ['store'], holds: 'the store interface, Redis and memory' },
  { name: 'platform', units: ['observability', 'keys', 'views'], holds: 'logs, metrics, audit; key files; page templates' },
  { name: 'web', units: ['http'], holds: 'HTTP pieces every router uses: pages, form bodies, client address, certificate headers' },
  { name: 'identity', units: ['accounts'], holds: 'accounts and groups' },
  { name: 'own tokens', units: ['tokens'], holds: 'the one verifier of fedgate\'s own tokens (gateway, admin API, token exchange)' },
  { name: 'shared ideas', units: ['authz', 'grants', 'resource-servers'], holds: 'the PDP; grants and their revocation; the resource server registry' },
  { name: 'services', units: ['services'], holds: 'the Services bundle every feature receives (src/services.ts)' },
  { name: 'protocol', units: ['oidc', 'federation'], holds: 'oidc-provider configured; the hooks both identity bridges finish through' },
  { name: 'features', units: ['exchange', 'gateway', 'federation/saml', 'federation/x509'], holds: 'token exchange, the PEP, the two identity bridges' },
  { name: 'pages and records', units: ['interaction', 'account', 'datasources'], holds: 'login and account pages; data source records' },
  { name: 'administration', units: ['admin'], holds: 'the admin REST API' },
  { name: 'console', units: ['console'], holds: 'the admin console pages (issue 17); talks to the admin API over HTTP' },
  { name: 'assembly', units: ['app'], holds: 'createFedgate (src/app.ts and its steps in src/app/) and the process (src/main.ts)' },
  { name: 'command line', units: ['cli'], holds: 'the fedgate command' },
];

/**
 * Rules that hold whatever the order of the layers becomes: each names a unit
 * and what it must never import (units, or unit prefixes ending in `/`).
 * The first ones are issue 16's, word for word; the layer order implies them,
 * and they are checked on their own so that moving a layer cannot quietly
 * undo one.
 */
export const FORBIDDEN: ReadonlyArray<{ from: readonly string[]; to: readonly string[]; why: string }> = [
  { from: ['store', 'keys', 'accounts'], to: FEATURES(), why: 'store, keys and accounts import no feature' },
  { from: ['authz'], to: ['oidc', 'gateway', 'exchange', 'datasources'], why: 'the PDP knows nothing of protocols or enforcement' },
  { from: ['oidc'], to: ['exchange', 'gateway', 'admin', 'federation', 'federation/saml', 'federation/x509', 'datasources'], why: 'oidc-provider\'s configuration is extended through seams, not by importing features' },
  { from: ['federation/saml'], to: ['federation/x509', 'gateway'], why: 'the identity bridges know neither each other nor the gateway' },
  { from: ['federation/x509'], to: ['federation/saml', 'gateway'], why: 'the identity bridges know neither each other nor the gateway' },
  { from: ['gateway'], to: ['admin', 'datasources', 'exchange'], why: 'the PEP enforces: administration, data sources and token exchange sit above it' },
  { from: ['console'], to: ['admin', 'store', 'accounts', 'authz', 'oidc', 'datasources', 'grants'], why: 'the console is a client of the admin API: it reaches data over HTTP, never through admin internals or storage' },
];

function FEATURES(): string[] {
  return ['tokens', 'authz', 'grants', 'resource-servers', 'oidc', 'federation', 'exchange', 'gateway', 'federation/saml', 'federation/x509',
    'interaction', 'account', 'datasources', 'admin', 'console', 'services', 'app', 'cli'];
}

/** The unit a file of src/ belongs to. */
export function unitOf(file: string, srcDir: string): string {
  const parts = relative(srcDir, file).split(sep);
  if (parts.length === 1) {
    const base = parts[0]!.replace(/\.ts$/, '');
    return base === 'main' ? 'app' : base;
  }
  if (parts[0] === 'federation' && parts.length > 2) return `${parts[0]}/${parts[1]}`;
  return parts[0]!;
}

export interface ImportEdge { fromFile: string; toFile: string; from: string; to: string }

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out.sort();
}

/** Every relative import between two units of src/ (static, type-only, re-exports and dynamic). */
export function importEdges(srcDir = resolve('src')): { units: Set<string>; edges: ImportEdge[] } {
  const units = new Set<string>();
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(srcDir)) {
    const from = unitOf(file, srcDir);
    units.add(from);
    for (const imported of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (!imported.fileName.startsWith('.')) continue;
      const target = resolve(dirname(file), imported.fileName);
      const to = unitOf(target, srcDir);
      if (to !== from) edges.push({ fromFile: relative(srcDir, file), toFile: relative(srcDir, target), from, to });
    }
  }
  return { units, edges };
}

const LAYER_OF = new Map(LAYERS.flatMap((layer, index) => layer.units.map((unit) => [unit, index] as const)));

/** Units found in src/ that the table does not place. */
export function unplacedUnits(units: Iterable<string>): string[] {
  return [...units].filter((unit) => !LAYER_OF.has(unit)).sort();
}

/** Imports of a unit in the same or a higher layer. */
export function upwardImports(edges: readonly ImportEdge[]): ImportEdge[] {
  return edges.filter((edge) => {
    const from = LAYER_OF.get(edge.from);
    const to = LAYER_OF.get(edge.to);
    return from !== undefined && to !== undefined && to >= from;
  });
}

/** Imports that break a FORBIDDEN rule, with the rule's reason. */
export function forbiddenImports(edges: readonly ImportEdge[]): Array<ImportEdge & { why: string }> {
  const out: Array<ImportEdge & { why: string }> = [];
  for (const edge of edges) {
    for (const rule of FORBIDDEN) {
      if (rule.from.includes(edge.from) && rule.to.includes(edge.to)) out.push({ ...edge, why: rule.why });
    }
  }
  return out;
}

/** The folder-level cycles: strongly connected components of the unit graph with more than one unit (Tarjan). */
export function unitCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const { from, to } of edges) {
    if (!next.has(from)) next.set(from, new Set());
    next.get(from)!.add(to);
    if (!next.has(to)) next.set(to, new Set());
  }
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (unit: string): void => {
    index.set(unit, counter);
    low.set(unit, counter);
    counter += 1;
    stack.push(unit);
    onStack.add(unit);
    for (const to of next.get(unit)!) {
      if (!index.has(to)) {
        visit(to);
        low.set(unit, Math.min(low.get(unit)!, low.get(to)!));
      } else if (onStack.has(to)) {
        low.set(unit, Math.min(low.get(unit)!, index.get(to)!));
      }
    }
    if (low.get(unit) === index.get(unit)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== unit);
      if (component.length > 1) components.push(component.sort());
    }
  };
  for (const unit of [...next.keys()].sort()) if (!index.has(unit)) visit(unit);
  return components.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** One line per import edge, for messages and the report. */
export function describe(edge: ImportEdge): string {
  return `${edge.from} -> ${edge.to}  (src/${edge.fromFile} imports src/${edge.toFile})`;
}

if (import.meta.main) {
  const { units, edges } = importEdges();
  const unplaced = unplacedUnits(units);
  const upward = upwardImports(edges);
  const forbidden = forbiddenImports(edges);
  const cycles = unitCycles(edges);
  const pairs = new Set(edges.map((edge) => `${edge.from} -> ${edge.to}`));
  console.log(`units: ${units.size}, unit-level dependencies: ${pairs.size}, file-level imports across units: ${edges.length}`);
  console.log(`units the table does not place: ${unplaced.length}${unplaced.length ? ` (${unplaced.join(', ')})` : ''}`);
  console.log(`folder-level cycles: ${cycles.length}`);
  for (const cycle of cycles) console.log(`  ${cycle.join(' <-> ')}`);
  console.log(`upward imports (same or higher layer): ${upward.length}`);
  for (const edge of upward) console.log(`  ${describe(edge)}`);
  console.log(`imports a named rule forbids: ${forbidden.length}`);
  for (const edge of forbidden) console.log(`  ${describe(edge)}: ${edge.why}`);
}
