/**
 * The validation worker's entry (run by piscina in validation-pool.ts): the
 * document checks of response-checks.ts, off the event loop. Each task
 * first says on its own port that it has started, so the deadline counts
 * the work, not the time spent waiting in the queue.
 */
import type { MessagePort } from 'node:worker_threads';
import { inspectResponse, verifyResponse, type Inspection, type Refusal, type Verified, type VerifyInput } from './response-checks.ts';

/** One unit of work for the pool. */
export type ValidationTask =
  | { kind: 'warm' }
  | { kind: 'inspect'; samlResponse: string; started: MessagePort }
  | { kind: 'verify'; input: VerifyInput; started: MessagePort };

export default async function run(task: ValidationTask): Promise<Inspection | Verified | Refusal | null> {
  if (task.kind === 'warm') return null;
  task.started.postMessage(0);
  task.started.close();
  return task.kind === 'inspect' ? inspectResponse(task.samlResponse) : verifyResponse(task.input);
}
