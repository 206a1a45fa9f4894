import { fileURLToPath } from 'node:url';

/** The gitignored output directory at the repository root: results.json, profiles/. */
export const OUTPUT_DIR = fileURLToPath(new URL('../../.bench/', import.meta.url));
export const PROFILES_DIR = fileURLToPath(new URL('../../.bench/profiles/', import.meta.url));
export const RESULTS_FILE = fileURLToPath(new URL('../../.bench/results.json', import.meta.url));
