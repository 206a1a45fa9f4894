import { pino, type Logger } from 'pino';

/**
 * Paths pino blanks in every log line. Tokens, codes, passwords and secrets
 * must never reach a log; callers also avoid logging them in the first place.
 */
const REDACT = [
  'password', '*.password', 'secret', '*.secret', 'client_secret', '*.client_secret',
  'token', '*.token', 'access_token', '*.access_token', 'refresh_token', '*.refresh_token',
  'id_token', '*.id_token', 'authorization', '*.authorization',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["dpop"]', 'res.headers["set-cookie"]',
];

/** The one logger factory; `destination` lets tests capture lines. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'fedgate' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ sync: false }),
  );
}

export type { Logger };
