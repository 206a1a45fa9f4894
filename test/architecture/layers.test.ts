/**
 * The layer rules of test/architecture/layers.ts, checked on src/ as it is.
 * A failure names the file and the import that breaks the rule.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  describe as describeEdge, FORBIDDEN, forbiddenImports, importEdges, LAYERS, unitCycles, unplacedUnits, upwardImports, type ImportEdge,
} from './layers.ts';

const { units, edges } = importEdges();

describe('layers', () => {
  it('every folder of src/ has its place in the table', () => {
    assert.deepEqual(unplacedUnits(units), [], 'add the new folder to LAYERS in test/architecture/layers.ts (and docs/architecture.md)');
  });

  it('imports point only to lower layers', () => {
    const upward = upwardImports(edges).map(describeEdge);
    assert.deepEqual(upward, []);
  });

  it('no import breaks a named rule', () => {
    const broken = forbiddenImports(edges).map((edge) => `${describeEdge(edge)}: ${edge.why}`);
    assert.deepEqual(broken, []);
  });

  it('no folder-level cycles', () => {
    const cycles = unitCycles(edges);
    assert.deepEqual(cycles, []);
  });

  it('the check sees what it checks: type-only imports, and an upward edge is caught', () => {
    // src/services.ts only imports types from below.
    assert.ok(edges.some((edge) => edge.fromFile === 'services.ts' && edge.to === 'store'), 'type-only imports are edges');
    const up: ImportEdge = { fromFile: 'store/store.ts', toFile: 'oidc/provider.ts', from: 'store', to: 'oidc' };
    assert.equal(upwardImports([up]).length, 1);
    assert.ok(forbiddenImports([up]).length >= 1);
    const sideways: ImportEdge = { fromFile: 'federation/saml/index.ts', toFile: 'federation/x509/index.ts', from: 'federation/saml', to: 'federation/x509' };
    assert.equal(upwardImports([sideways]).length, 1, 'units of one layer do not import each other');
    assert.deepEqual(unitCycles([up, { ...up, from: 'oidc', to: 'store' }]), [['oidc', 'store']]);
  });

  it('docs/architecture.md shows the layers of the table, top first', () => {
    const doc = readFileSync('docs/architecture.md', 'utf8');
    const start = doc.indexOf('\n## Layers\n');
    assert.ok(start >= 0, 'docs/architecture.md has a "Layers" section');
    const section = doc.slice(start, doc.indexOf('\n## ', start + 4));
    const rows = [...section.matchAll(/^\| ([^|`]+?) \| ((?:`[^`]+`(?:, )?)+) \|/gm)].map((m) => `${m[1]}: ${[...m[2]!.matchAll(/`([^`]+)`/g)].map((u) => u[1]).join(' ')}`);
    assert.deepEqual(rows, [...LAYERS].reverse().map((layer) => `${layer.name}: ${layer.units.join(' ')}`));
  });

  it('the table places each unit once and every named rule names known units', () => {
    const placed = LAYERS.flatMap((layer) => layer.units);
    assert.equal(new Set(placed).size, placed.length);
    for (const rule of FORBIDDEN) for (const unit of [...rule.from, ...rule.to]) assert.ok(placed.includes(unit), `${unit} is in LAYERS`);
  });
});
