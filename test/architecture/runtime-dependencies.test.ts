/**
 * The server's runtime needs exactly its `dependencies`: every package that
 * src/ loads at run time is one of them (a devDependency would be missing
 * from a production install), and every one of them is loaded by src/ (an
 * unused dependency is dead weight with its own advisories).
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const root = join(import.meta.dirname, '..', '..');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.ts')).map((e) => join(e.parentPath, e.name));
}

/** The package a bare specifier names (`@scope/name/sub` → `@scope/name`), or undefined for relative and built-in ones. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]!)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** Packages a file loads at run time: value imports, re-exports and dynamic import() of string literals (type-only imports are erased). */
function runtimePackages(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.importClause?.namedBindings;
      const onlyTypes = !node.importClause?.name && named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.map(packageOf).filter((p): p is string => p !== undefined);
}

test('src/ loads exactly the packages listed in dependencies', async () => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const declared = new Set(Object.keys(pkg.dependencies));
  const loadedBy = new Map<string, string>();
  for (const file of await sourceFiles(join(root, 'src'))) {
    for (const name of runtimePackages(file, await readFile(file, 'utf8'))) {
      if (!loadedBy.has(name)) loadedBy.set(name, relative(root, file));
    }
  }
  const undeclared = [...loadedBy].filter(([name]) => !declared.has(name)).map(([name, file]) => `${name} (loaded by ${file})`);
  assert.deepEqual(undeclared, [], 'src/ loads packages that are not runtime dependencies');
  const unused = [...declared].filter((name) => !loadedBy.has(name));
  assert.deepEqual(unused, [], 'runtime dependencies that nothing in src/ loads');
});

test('the import reader sees what it must (value, re-export and dynamic imports; not type-only ones)', () => {
  const text = [
    "import type { A } from 'types-only';",
    "import { type B } from 'also-types-only';",
    "import { c } from '@scope/pkg/deep';",
    "export { d } from 'reexported';",
    "const e = await import('dynamic');",
    "import f from './relative.ts';",
    "import { readFile } from 'node:fs/promises';",
    "import { join } from 'path';",
  ].join('\n');
  assert.deepEqual(runtimePackages('x.ts', text), ['@scope/pkg', 'reexported', 'dynamic']);
});

/**
 * Packages whose undocumented internals fedgate relies on, each for a reason
 * a test pins: they are pinned to an exact version, so that an upgrade is a
 * deliberate change that runs those tests, never a caret drift.
 */
const RELIED_ON_INTERNALS: Record<string, string> = {
  'prom-client': "src/observability/fast-metrics.ts registers its own metric objects in the shape of prom-client's (test/observability/fast-metrics.test.ts)",
  'xml-crypto': 'src/federation/saml/metadata.ts streams exclusive canonicalization through ExclusiveCanonicalization.renderNs/processInner, marked private (test/federation/saml/metadata.test.ts: agrees with xml-crypto SignedXml.checkSignature)',
};

test('packages whose internals fedgate relies on are pinned exactly and installed at that version', async () => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const [name, reason] of Object.entries(RELIED_ON_INTERNALS)) {
    const wanted = pkg.dependencies[name];
    assert.match(wanted ?? '', /^\d+\.\d+\.\d+$/, `${name} must be pinned exactly: ${reason}`);
    const installed = JSON.parse(await readFile(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
    assert.equal(installed.version, wanted, `${name} installed at another version than pinned`);
  }
});
