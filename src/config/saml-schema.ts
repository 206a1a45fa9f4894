import { z } from 'zod';

/**
 * SAML federation login (src/federation/saml). Owned by the SAML bridge;
 * every option documented here.
 */
export const samlSchema = z.object({
  /** Offer SAML login (needs at least one metadata source). */
  enabled: z.boolean().default(false),
}).strict();

export type SamlConfig = z.infer<typeof samlSchema>;
