/**
 * The one polling helper of the tests: waits until `check` holds (it may
 * throw or answer false meanwhile), checking every `everyMs`; resolves with
 * how long it took, or fails after `ms` with the last error or `what`.
 */
export async function within(ms: number, check: () => boolean | Promise<boolean>, what = 'the condition', everyMs = 10): Promise<number> {
  const start = performance.now();
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return performance.now() - start;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() - start >= ms) {
      throw lastError instanceof Error ? lastError : new Error(`${what} did not hold within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
