/**
 * Pages of the SAML bridge: identity provider discovery and the link
 * confirmation. Server-rendered with the shared layout; no script, and no
 * outside assets (only `data:` logos are shown, as the page CSP allows).
 */
import { html } from '../../views/html.ts';
import { layout } from '../../views/layout.ts';

/** One identity provider as a choice. */
export interface DiscoveryChoice {
  displayName: string;
  /** Where choosing it goes (`/saml/login?...`). */
  href: string;
  logo?: string | undefined;
}

/** Options of {@link discoveryPage}. */
export interface DiscoveryPageOptions {
  nonce: string;
  /** Hidden fields the search form repeats (interaction or link). */
  hidden: Record<string, string>;
  query: string;
  /** The identity provider chosen last time, if it is still trusted. */
  remembered?: DiscoveryChoice | undefined;
  results: DiscoveryChoice[];
  /** Identity providers matching the query in all (results may be fewer). */
  total: number;
  /** Whether this is for linking an identity (else signing in). */
  link: boolean;
}

function choice(c: DiscoveryChoice) {
  const logo = c.logo?.startsWith('data:image/') ? html`<img src="${c.logo}" alt="" width="24" height="24"> ` : '';
  return html`<li>${logo}<a href="${c.href}">${c.displayName}</a></li>\n`;
}

/**
 * The discovery page: a search box (a GET form, so it works without
 * script), the last choice first, then matching identity providers as links.
 */
export function discoveryPage({ nonce, hidden, query, remembered, results, total, link }: DiscoveryPageOptions): string {
  const title = link ? 'Link an institutional account' : 'Sign in with your institution';
  const shown = results.filter((r) => r.href !== remembered?.href);
  const body = html`<h1>${title}</h1>
${remembered && html`<h2>Last used</h2>
<ul>
${choice(remembered)}</ul>`}
<form method="get" action="/saml/discovery" role="search">
${Object.entries(hidden).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">\n`)}<label for="q">Find your institution</label>
<input id="q" name="q" type="search" value="${query}" autocomplete="off" spellcheck="false"${remembered ? '' : html` autofocus`}>
<button type="submit">Search</button>
</form>
${shown.length > 0
    ? html`<h2>${query ? 'Matching institutions' : 'Institutions'}</h2>
<ul>
${shown.map(choice)}</ul>
${total > results.length && html`<p class="muted">${total - results.length} more; type more of the name to narrow the list.</p>`}`
    : html`<p>${query ? 'No institution matches your search. Try another part of its name.' : 'No institution is available.'}</p>`}`;
  return layout({ title, body, nonce });
}

/** Options of {@link linkedPage}. */
export interface LinkedPageOptions {
  nonce: string;
  idpName: string;
  accountName: string;
}

/** Confirms that an identity was linked, with a way back to the account page. */
export function linkedPage({ nonce, idpName, accountName }: LinkedPageOptions): string {
  const body = html`<h1>Account linked</h1>
<p>Your account at <strong>${idpName}</strong> is now linked to <strong>${accountName}</strong>. You can sign in with either from now on.</p>
<p><a href="/account">Back to your account</a></p>`;
  return layout({ title: 'Account linked', body, nonce });
}
