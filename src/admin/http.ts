import type { Context } from 'koa';
import type { z } from 'zod';
import { FedgateError } from '../util/errors.ts';
import { respondWithError } from '../http/error-response.ts';

/**
 * An OAuth-style JSON error with its status, through the one error writer.
 * (Refusals of the token itself are the gateway's `sendError`, with their
 * RFC 6750 challenge.)
 */
export function fail(ctx: Context, status: number, error: string, description: string): void {
  respondWithError(ctx, new FedgateError(error, description, { status, expose: true }), { format: 'json' });
}

/** The body validated by `schema`, or undefined after answering 400 with every problem. */
export function parseBody<T extends z.ZodType>(ctx: Context, schema: T): z.infer<T> | undefined {
  const parsed = schema.safeParse(ctx.request.body ?? {});
  if (parsed.success) return parsed.data;
  fail(ctx, 400, 'invalid_request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return undefined;
}

/** Who is calling the admin API, for audit events. */
export interface AdminCaller {
  /** An account id, or `client:<client_id>`. */
  actor: string;
  /** For display: a username or `client:<client_id>`. */
  label: string;
  /** An administrator (member of /admins, or an administrative client): every route. */
  admin: boolean;
  /** Groups a group manager manages (with their subgroups): only the member routes of those. */
  manages: readonly string[];
}

export function caller(ctx: Context): AdminCaller {
  return ctx.state.admin as AdminCaller;
}

/**
 * A group named in a URL: URL-encoded, with or without its leading slash
 * (`cms%2Fproduction` or `%2Fcms%2Fproduction`), as GitLab's API names groups.
 */
export function groupParam(value: string | undefined): string {
  const path = value ?? '';
  return path.startsWith('/') ? path : `/${path}`;
}
