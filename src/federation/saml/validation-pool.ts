/**
 * The worker threads SAML responses are checked in (piscina): a fixed pool,
 * a bounded queue, and a deadline per task. Parsing and verifying an
 * attacker's document can cost far more than its size suggests (XPath
 * lookups in node-saml and xml-crypto are quadratic in sibling count), so
 * none of it runs on the event loop, and a task that runs past its deadline
 * is stopped by terminating its thread (piscina starts a fresh one): no
 * single request can hold the others.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { SamlResponseError, type Inspection, type Refusal, type Verified, type VerifyInput } from './response-checks.ts';
import type { ValidationTask } from './response-worker.ts';

/** Options of {@link ValidationPool}. */
export interface ValidationPoolOptions {
  /** Worker threads. */
  threads: number;
  /** How long one task may run once started, ms. */
  deadlineMs: number;
  /** Tasks that may wait for a thread; more are refused (`busy`). */
  maxQueue: number;
}

/** Scheduling priority of the worker threads below the event loop's (nice(2) increment, via @napi-rs/nice). */
const WORKER_NICE = 10;
/** A worker's heap ceiling: far above what the largest allowed response needs. */
const WORKER_HEAP_MB = 128;

/** What the pool has done since it started. */
export interface ValidationStats {
  /** Tasks run (inspections and verifications). */
  tasks: number;
  /** XML signatures checked, whatever the verdict. */
  signatureChecks: number;
  /** Tasks stopped at their deadline. */
  deadlineExceeded: number;
  /** Tasks refused because the queue was full. */
  rejectedBusy: number;
}

/** The pool; see the module comment. */
export class ValidationPool {
  readonly #pool: Piscina;
  readonly #deadlineMs: number;
  readonly #stats: ValidationStats = { tasks: 0, signatureChecks: 0, deadlineExceeded: 0, rejectedBusy: 0 };

  constructor(options: ValidationPoolOptions) {
    this.#deadlineMs = options.deadlineMs;
    this.#pool = new Piscina({
      filename: new URL('./response-worker.ts', import.meta.url).href,
      minThreads: 0,
      maxThreads: options.threads,
      maxQueue: options.maxQueue,
      idleTimeout: 5 * 60_000,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      // The event loop comes first: on a busy machine the OS runs it before the checks (Linux nice is per thread).
      niceIncrement: WORKER_NICE,
    });
  }

  /** Starts a thread and loads the checks in it, so the first login does not wait for that. */
  async warm(): Promise<void> {
    await this.#pool.run({ kind: 'warm' } satisfies ValidationTask);
  }

  /**
   * response-checks.ts inspectResponse, in a worker.
   *
   * @throws SamlResponseError
   */
  async inspect(samlResponse: string): Promise<Inspection> {
    return this.#run<Inspection>((started) => ({ kind: 'inspect', samlResponse, started }));
  }

  /**
   * response-checks.ts verifyResponse, in a worker.
   *
   * @throws SamlResponseError
   */
  async verify(input: VerifyInput): Promise<Verified> {
    return this.#run<Verified>((started) => ({ kind: 'verify', input, started }));
  }

  /** A copy of the counters. */
  stats(): ValidationStats {
    return { ...this.#stats };
  }

  async #run<T extends Inspection | Verified>(task: (started: MessagePort) => ValidationTask): Promise<T> {
    this.#stats.tasks += 1;
    const { port1, port2 } = new MessageChannel();
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    port1.once('message', () => {
      timer = setTimeout(() => abort.abort(), this.#deadlineMs);
    });
    let result: T | Refusal;
    try {
      result = await this.#pool.run(task(port2), { transferList: [port2], signal: abort.signal }) as T | Refusal;
    } catch (err) {
      if (abort.signal.aborted) {
        this.#stats.deadlineExceeded += 1;
        throw new SamlResponseError('too_complex', 'checking the response took too long');
      }
      const code = (err as { code?: string }).code;
      if (code === 'ERR_WORKER_OUT_OF_MEMORY') throw new SamlResponseError('too_complex', 'checking the response took too much memory');
      if ((err as Error).message === 'Task queue is at limit') {
        this.#stats.rejectedBusy += 1;
        throw new SamlResponseError('busy', 'too many responses are being checked');
      }
      throw err;
    } finally {
      clearTimeout(timer);
      port1.close();
    }
    this.#stats.signatureChecks += ('signatureChecks' in result ? result.signatureChecks : undefined) ?? 0;
    if (!result.ok) throw new SamlResponseError(result.reason, result.message, result.idp, result.status);
    return result;
  }

  /** Stops every thread. */
  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
