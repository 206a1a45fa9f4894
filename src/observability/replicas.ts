import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Store } from '../store/store.ts';

/** What a replica tells the others about itself, renewed every {@link HEARTBEAT_INTERVAL_MS}. */
export interface ReplicaBeat {
  id: string;
  hostname: string;
  pid: number;
  startedAt: string;
  seenAt: string;
}

const REPLICA_INDEX = 'replica-index';
const replicaKey = (id: string) => `replica:${id}`;
/** How often a replica writes its heartbeat. */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A heartbeat not renewed for this long is gone: the replica stopped or lost the store. */
const HEARTBEAT_TTL_SECONDS = 30;
/** The most replicas listed. */
const MAX_REPLICAS = 200;

/**
 * Writes this replica's heartbeat to the store (a key with a time to live,
 * listed in a sorted index) every 10 s, so that any replica can show which
 * replicas share the store. A failed write waits for the next beat: the
 * heartbeat never fails a request or the process.
 */
export function startHeartbeat(store: Store, onError: (err: Error) => void = () => {}): { id: string; stop(): Promise<void> } {
  const id = randomUUID();
  const startedAt = new Date().toISOString();
  const beat = async () => {
    const value: ReplicaBeat = { id, hostname: hostname(), pid: process.pid, startedAt, seenAt: new Date().toISOString() };
    await Promise.all([store.set(replicaKey(id), value, HEARTBEAT_TTL_SECONDS), store.addToIndex(REPLICA_INDEX, [id])]);
  };
  const safeBeat = () => beat().catch((err: unknown) => onError(err as Error));
  void safeBeat();
  const timer = setInterval(safeBeat, HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return {
    id,
    async stop() {
      clearInterval(timer);
      // Gone at once rather than after its time to live.
      await Promise.all([store.delete(replicaKey(id)), store.removeFromIndex(REPLICA_INDEX, [id])]).catch(() => {});
    },
  };
}

/** The replicas whose heartbeat is current; those that stopped beating are dropped from the index as they are met. */
export async function liveReplicas(store: Store): Promise<ReplicaBeat[]> {
  const { members } = await store.scanIndex(REPLICA_INDEX, { limit: MAX_REPLICAS });
  const beats = await Promise.all(members.map((id) => store.get<ReplicaBeat>(replicaKey(id))));
  const gone = members.filter((_, i) => !beats[i]);
  if (gone.length) await store.removeFromIndex(REPLICA_INDEX, gone);
  return beats.filter((b): b is ReplicaBeat => b !== undefined).sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}
