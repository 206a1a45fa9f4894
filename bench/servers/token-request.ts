/** The client credentials request both token issuance servers answer (fedgate's demo realm names). */
export const CLIENT_ID = 'demo-service';
export const CLIENT_SECRET = 'demo-service-secret';
export const AUDIENCE = 'https://storage.demo';
export const SCOPE = 'storage.read:/';
