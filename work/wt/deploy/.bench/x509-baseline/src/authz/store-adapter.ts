import type { BatchAdapter, Model } from 'casbin';
import type { Store } from '../store/store.ts';
import type { PolicyLine } from './types.ts';

/** The set of stored policy lines, each member the JSON array [ptype, ...values]. */
export const POLICY_LINES_KEY = 'policy:lines';

const sectionOf = (ptype: string) => (ptype.startsWith('g') ? 'g' : 'p');
const encode = (ptype: string, values: readonly string[]) => JSON.stringify([ptype, ...values]);

function decode(member: string): PolicyLine | undefined {
  try {
    const parsed = JSON.parse(member) as unknown;
    if (!Array.isArray(parsed) || parsed.length < 2 || !parsed.every((v) => typeof v === 'string')) return undefined;
    const [ptype, ...values] = parsed as string[];
    if (ptype !== 'p' && ptype !== 'g' && ptype !== 'g2') return undefined;
    return { ptype, values };
  } catch {
    return undefined;
  }
}

/** Lines in a stable order: access rules, then memberships and operations, each sorted. */
export function sortLines(lines: PolicyLine[]): PolicyLine[] {
  const order = { p: 0, g: 1, g2: 2 } as const;
  return lines.sort((a, b) => order[a.ptype] - order[b.ptype] || encode(a.ptype, a.values).localeCompare(encode(b.ptype, b.values)));
}

/** Writes in slices so a large import is pipelined without one giant burst. */
async function inSlices<T>(items: readonly T[], run: (item: T) => Promise<unknown>, size = 500): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run));
}

/**
 * A Casbin adapter on fedgate's store (Redis through ioredis, or the
 * embedded store): one set of lines. Written for fedgate because the
 * published Redis adapters pin an old ioredis major and know nothing of
 * Cluster hash tags; every operation here touches the one key.
 */
export class StorePolicyAdapter implements BatchAdapter {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Every stored line, in a stable order; malformed members are skipped. */
  async loadLines(): Promise<PolicyLine[]> {
    const members = await this.#store.setMembers(POLICY_LINES_KEY);
    return sortLines(members.map(decode).filter((l): l is PolicyLine => l !== undefined));
  }

  async addLines(lines: readonly PolicyLine[]): Promise<void> {
    await inSlices(lines, (l) => this.#store.addToSet(POLICY_LINES_KEY, encode(l.ptype, l.values)));
  }

  async removeLines(lines: readonly PolicyLine[]): Promise<void> {
    await inSlices(lines, (l) => this.#store.removeFromSet(POLICY_LINES_KEY, encode(l.ptype, l.values)));
  }

  // Casbin's Adapter interface.

  async loadPolicy(model: Model): Promise<void> {
    for (const line of await this.loadLines()) model.addPolicy(sectionOf(line.ptype), line.ptype, line.values);
  }

  async savePolicy(model: Model): Promise<boolean> {
    const wanted: PolicyLine[] = [];
    for (const sec of ['p', 'g']) {
      for (const [ptype, assertion] of model.model.get(sec) ?? new Map()) {
        if (ptype !== 'p' && ptype !== 'g' && ptype !== 'g2') continue;
        for (const values of assertion.policy) wanted.push({ ptype, values: [...values] });
      }
    }
    const current = await this.loadLines();
    const wantedKeys = new Set(wanted.map((l) => encode(l.ptype, l.values)));
    const currentKeys = new Set(current.map((l) => encode(l.ptype, l.values)));
    await this.removeLines(current.filter((l) => !wantedKeys.has(encode(l.ptype, l.values))));
    await this.addLines(wanted.filter((l) => !currentKeys.has(encode(l.ptype, l.values))));
    return true;
  }

  async addPolicy(_sec: string, ptype: string, rule: string[]): Promise<void> {
    await this.#store.addToSet(POLICY_LINES_KEY, encode(ptype, rule));
  }

  async removePolicy(_sec: string, ptype: string, rule: string[]): Promise<void> {
    await this.#store.removeFromSet(POLICY_LINES_KEY, encode(ptype, rule));
  }

  async addPolicies(_sec: string, ptype: string, rules: string[][]): Promise<void> {
    await inSlices(rules, (rule) => this.#store.addToSet(POLICY_LINES_KEY, encode(ptype, rule)));
  }

  async removePolicies(_sec: string, ptype: string, rules: string[][]): Promise<void> {
    await inSlices(rules, (rule) => this.#store.removeFromSet(POLICY_LINES_KEY, encode(ptype, rule)));
  }

  async removeFilteredPolicy(_sec: string, ptype: string, fieldIndex: number, ...fieldValues: string[]): Promise<void> {
    const matches = (await this.loadLines()).filter((line) => line.ptype === ptype
      && fieldValues.every((value, i) => value === '' || line.values[fieldIndex + i] === value));
    await this.removeLines(matches);
  }
}
