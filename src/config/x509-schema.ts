import { z } from 'zod';

/**
 * X.509 certificate login (src/federation/x509). Owned by the X.509 bridge;
 * every option documented here.
 */
export const x509Schema = z.object({
  /** Offer certificate login (needs trust anchors). */
  enabled: z.boolean().default(false),
  /** Port of fedgate's own TLS listener that asks for client certificates (env FEDGATE_MTLS_PORT); absent = none. */
  mtlsPort: z.number().int().min(0).max(65535).optional(),
}).strict();

export type X509Config = z.infer<typeof x509Schema>;
