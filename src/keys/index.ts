/**
 * Signing and cookie keys kept in the keys directory; see key-store.ts and
 * keys/README.md.
 */
export {
  COOKIE_KEYS_FILE,
  SIGNING_KEYS_FILE,
  jwksForProvider,
  keyState,
  loadOrCreateCookieKeys,
  loadOrCreateKeys,
  maintainKeys,
  nextKeyChange,
  parseKeySet,
  publicJwks,
  rotateKeys,
  RotationPendingError,
  SIGNING_ALGORITHMS,
  toPublicJwk,
  watchKeys,
} from './key-store.ts';
export type {
  ClockOptions,
  KeySet,
  KeyState,
  MaintainOptions,
  RotateOptions,
  RotateResult,
  SigningAlg,
  SigningJwk,
  StoredKey,
  WatchOptions,
} from './key-store.ts';
