/**
 * Markup building for the server-rendered pages.
 *
 * Every page is built with the {@link html} tagged template, which escapes
 * each interpolated value unless it is {@link SafeHtml}. The only ways to get
 * SafeHtml are `html` itself and {@link raw}, so untrusted text cannot reach
 * the output unescaped by accident.
 */

const TOKEN: unique symbol = Symbol('SafeHtml');

/**
 * Markup that is already safe to emit. Instances come only from
 * {@link html} and {@link raw}; the constructor rejects any other caller.
 */
export class SafeHtml {
  readonly #value: string;

  constructor(token: typeof TOKEN, value: string) {
    if (token !== TOKEN) throw new TypeError('SafeHtml is made by html`` or raw()');
    this.#value = value;
  }

  /** The markup itself. */
  toString(): string {
    return this.#value;
  }
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * Escapes `value` for use in element content and in quoted attribute values.
 * `null` and `undefined` become the empty string; anything else is converted
 * with `String()` first.
 */
export function escapeHtml(value: unknown): string {
  if (value === null || value === undefined) return '';
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.toString();
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === false) return '';
  return escapeHtml(value);
}

/**
 * Tagged template for markup. Interpolated values are escaped, except
 * SafeHtml, which is inserted as is. Arrays are rendered element by element
 * and joined; `null`, `undefined` and `false` render as nothing, so
 * `${cond && html`…`}` works.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) {
    out += render(values[i]) + strings[i + 1]!;
  }
  return new SafeHtml(TOKEN, out);
}

/**
 * Marks `trusted` as safe markup without escaping it. Only for markup that
 * comes from a trusted producer, such as the forms oidc-provider generates.
 */
export function raw(trusted: string): SafeHtml {
  return new SafeHtml(TOKEN, trusted);
}
