/**
 * Refusals of data source changes. Each carries a stable wire `code` (the
 * admin API's `error`) and, for bad input, the fields at fault.
 */
import { FedgateError } from '../util/errors.ts';

/** One problem with a record: the field (`audience`, `defaultPolicies.0.group`) and why. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** The codes a data source change can be refused with, and the HTTP status the admin API answers. */
export const DATA_SOURCE_ERROR_STATUS = {
  /** Bad input: a field is malformed, a duplicate, or names something that does not exist. */
  invalid_request: 400,
  /** No data source of that name. */
  not_found: 404,
  /** Defined in the configuration file (`resourceServers` / `gateway.services`): change it there. */
  read_only: 409,
  /** Another change held the lock for too long. */
  temporarily_unavailable: 503,
} as const;

export type DataSourceErrorCode = keyof typeof DATA_SOURCE_ERROR_STATUS;

/**
 * A refused data source change; nothing of it was kept. Answered with the
 * status of its code and, when fields are at fault, `problems` beside the
 * OAuth-style members.
 */
export class DataSourceError extends FedgateError {
  readonly code: DataSourceErrorCode;
  readonly problems: FieldProblem[];

  constructor(code: DataSourceErrorCode, problems: FieldProblem[] | string) {
    const list = typeof problems === 'string' ? [] : problems;
    super(code, typeof problems === 'string' ? problems : list.map((p) => `${p.field}: ${p.message}`).join('; '), {
      status: DATA_SOURCE_ERROR_STATUS[code], expose: true, ...(list.length ? { fields: { problems: list } } : {}),
    });
    this.code = code;
    this.problems = list;
  }
}
