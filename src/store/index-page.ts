import type { IndexPage, IndexQuery, Store } from './store.ts';

/** How long one page may keep searching an index before it answers with what it has and a cursor. */
export const INDEX_PAGE_TIME_MS = 50;

/**
 * One page of the sorted index at `key`: calls {@link Store.scanIndex} (each
 * call bounded by its budget) until `query.limit` members are found, the
 * index ends, or about {@link INDEX_PAGE_TIME_MS} have passed. A rare search
 * over a large index thus answers in bounded time, possibly with fewer
 * members than asked and a `next` to continue from.
 */
export async function indexPage(store: Store, key: string, query: IndexQuery): Promise<IndexPage> {
  const started = performance.now();
  const members: string[] = [];
  let after = query.after;
  let next: string | undefined;
  do {
    const page = await store.scanIndex(key, { ...query, after, limit: query.limit - members.length });
    members.push(...page.members);
    next = page.next;
    after = next;
  } while (next !== undefined && members.length < query.limit && performance.now() - started < INDEX_PAGE_TIME_MS);
  return { members, next };
}
