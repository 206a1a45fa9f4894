/** What {@link adminCall} answers: the status, the JSON body (or `{}`) and the raw text. */
export interface AdminAnswer {
  status: number;
  // Tests read whatever the route answers.
  json: Record<string, any>;
  text: string;
}

/** One admin API request (`<issuer>/admin/api<path>`) with a bearer token and an optional JSON body. */
export async function adminCall(issuer: string, token: string, path: string, init: { method?: string; body?: unknown } = {}): Promise<AdminAnswer> {
  const res = await fetch(`${issuer}/admin/api${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) as Record<string, any> : {}, text };
}
