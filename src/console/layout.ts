/**
 * The console's document: the house style of fedgate's pages (src/views),
 * wider, with a navigation bar. No outside assets; one optional nonce'd
 * script adds copy buttons (everything works without it).
 */
import { html, raw, type SafeHtml } from '../views/html.ts';
import { documentStart } from '../views/layout.ts';

/** The console's sections, in navigation order. */
export const SECTIONS = [
  { id: 'overview', href: '/admin', label: 'Overview', admin: true },
  { id: 'groups', href: '/admin/groups', label: 'Groups', admin: false },
  { id: 'policies', href: '/admin/policies', label: 'Policies', admin: true },
  { id: 'datasources', href: '/admin/datasources', label: 'Data sources', admin: true },
  { id: 'clients', href: '/admin/clients', label: 'Clients', admin: true },
  { id: 'accounts', href: '/admin/accounts', label: 'Accounts', admin: true },
  { id: 'audit', href: '/admin/audit', label: 'Audit', admin: true },
  { id: 'requests', href: '/admin/requests', label: 'Requests', admin: false },
] as const;
export type SectionId = (typeof SECTIONS)[number]['id'];

const MONO = 'ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace';

const CSS = raw(`
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--fg:#111827;--muted:#4b5563;--line:#6b7280;--soft:#e5e7eb;--accent:#1d4ed8;--on-accent:#fff;--focus:#1d4ed8;--err-bg:#fef2f2;--err-fg:#991b1b;--err-line:#b91c1c;--ok-bg:#ecfdf5;--ok-fg:#065f46;--ok-line:#047857;--bar:#111827;--on-bar:#f9fafb}
@media (prefers-color-scheme:dark){:root{--bg:#0b1120;--card:#1f2937;--fg:#f9fafb;--muted:#d1d5db;--line:#9ca3af;--soft:#374151;--accent:#93c5fd;--on-accent:#0b1120;--focus:#93c5fd;--err-bg:#450a0a;--err-fg:#fecaca;--err-line:#f87171;--ok-bg:#022c22;--ok-fg:#a7f3d0;--ok-line:#34d399;--bar:#020617;--on-bar:#f9fafb}}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
.skip{position:absolute;left:-999px;top:0;padding:.5rem 1rem;background:var(--card);color:var(--fg)}
.skip:focus{left:.5rem;z-index:2}
header{background:var(--bar);color:var(--on-bar);padding:.5rem 1rem}
header .top{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem;max-width:72rem;margin:0 auto}
header .brand{font-weight:700;color:var(--on-bar);text-decoration:none}
header .who{display:flex;align-items:center;gap:.75rem;font-size:.9375rem}
header .who form button{white-space:nowrap;width:auto;min-height:2.25rem;margin:0;padding:.25rem .75rem;color:var(--on-bar);background:transparent;border:1px solid var(--on-bar)}
header nav ul{display:flex;flex-wrap:wrap;gap:.25rem;list-style:none;margin:.5rem auto 0;padding:0;max-width:72rem}
header nav a{display:block;padding:.375rem .75rem;border-radius:.375rem;color:var(--on-bar);text-decoration:none}
header nav a[aria-current=page]{background:var(--on-bar);color:var(--bar);font-weight:600}
header nav a:hover{text-decoration:underline}
main{max-width:72rem;margin:1rem auto;padding:1rem 1.25rem;background:var(--card);border-radius:.75rem;box-shadow:0 1px 3px rgba(0,0,0,.25);overflow-wrap:break-word}
@media (max-width:40rem){main{margin:.5rem;padding:1rem .75rem}}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
h2{font-size:1.125rem;margin:1.5rem 0 .5rem}
h3{font-size:1rem;margin:1rem 0 .5rem}
p,ul,ol,dl{margin:0 0 1rem}
li{margin:.25rem 0}
a{color:var(--accent)}
code,pre,textarea.code{font-family:${MONO};font-size:.875rem}
code{overflow-wrap:anywhere}
pre{margin:0 0 1rem;padding:.75rem;overflow-x:auto;background:var(--bg);border:1px solid var(--soft);border-radius:.375rem;white-space:pre}
.muted{color:var(--muted)}
.table{overflow-x:auto;margin:0 0 1rem}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.5rem;border-bottom:1px solid var(--soft)}
th{font-weight:600}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem;margin:0 0 1rem}
.card{padding:1rem;border:1px solid var(--soft);border-radius:.5rem}
.card h2{margin-top:0}
.big{font-size:1.75rem;font-weight:700}
label{display:block;font-weight:600;margin:0 0 .25rem}
input:not([type=hidden]):not([type=checkbox]):not([type=radio]),select,textarea{display:block;width:100%;min-height:2.5rem;margin:0 0 .75rem;padding:.375rem .625rem;font:inherit;color:var(--fg);background:var(--card);border:1px solid var(--line);border-radius:.375rem}
textarea{min-height:8rem}
fieldset{margin:0 0 1rem;padding:.75rem;border:1px solid var(--soft);border-radius:.5rem}
legend{font-weight:600;padding:0 .25rem}
.check{display:flex;gap:.5rem;align-items:center;font-weight:400}
.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end}
.row>*{flex:1 1 12rem}
.row>.narrow{flex:0 0 auto}
form{margin:0 0 .75rem}
form.inline{display:inline-block;margin:0 .25rem .25rem 0}
button{min-height:2.5rem;padding:.375rem 1rem;font:inherit;font-weight:600;color:var(--on-accent);background:var(--accent);border:2px solid var(--accent);border-radius:.375rem;cursor:pointer}
button.secondary{color:var(--fg);background:transparent;border-color:var(--line)}
button.danger{color:#fff;background:#b91c1c;border-color:#b91c1c}
button:hover{text-decoration:underline}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
[role=alert],.notice{margin:0 0 1rem;padding:.75rem 1rem;border:1px solid;border-left-width:.375rem;border-radius:.375rem}
[role=alert]{color:var(--err-fg);background:var(--err-bg);border-color:var(--err-line)}
.notice{color:var(--ok-fg);background:var(--ok-bg);border-color:var(--ok-line)}
[role=alert] p:last-child,.notice p:last-child{margin:0}
.secret{font:600 1rem/1.4 ${MONO};padding:.5rem;border:1px dashed var(--line);border-radius:.375rem;overflow-wrap:anywhere}
ul.plain{list-style:none;padding:0}
.tree ul{list-style:none;padding-left:1.25rem;margin:0}
.tree>ul{padding-left:0}
.badge{display:inline-block;padding:0 .5rem;border:1px solid var(--line);border-radius:1rem;font-size:.8125rem}
.bad{color:var(--err-fg)}
.line-error{color:var(--err-fg);font-size:.875rem}
.pager{display:flex;gap:1rem;margin:0 0 1rem}
.copy{margin-left:.5rem;min-height:2rem;padding:.125rem .5rem;font-size:.8125rem}
`.trim());

/** Copy buttons for `[data-copy]` elements; the page works without it. */
const COPY_SCRIPT = raw(`
document.querySelectorAll('[data-copy]').forEach(function (el) {
  var b = document.createElement('button');
  b.type = 'button'; b.className = 'secondary copy'; b.textContent = 'Copy';
  b.setAttribute('aria-label', 'Copy ' + (el.getAttribute('data-copy') || 'text'));
  b.addEventListener('click', function () {
    navigator.clipboard.writeText(el.textContent || '').then(function () { b.textContent = 'Copied'; }, function () { b.textContent = 'Select and copy'; });
  });
  el.insertAdjacentElement('afterend', b);
});
`.trim());

export interface ConsoleLayoutOptions {
  nonce: string;
  title: string;
  /** The section highlighted in the navigation; none for pages outside it (refusals). */
  section?: SectionId | undefined;
  body: SafeHtml;
  /** Who is signed in; absent on pages shown before or without a session. */
  user?: { username: string; admin: boolean; csrf: string } | undefined;
  /** A message after a change. */
  flash?: { kind: 'notice' | 'error'; text: string } | undefined;
}

/** A complete console page. */
export function consoleLayout({ nonce, title, section, body, user, flash }: ConsoleLayoutOptions): string {
  const sections = SECTIONS.filter((s) => user && (user.admin || !s.admin));
  const nav = user && html`<nav aria-label="Console"><ul>
${sections.map((s) => html`<li><a href="${s.href}"${s.id === section ? html` aria-current="page"` : ''}>${s.label}</a></li>`)}
</ul></nav>`;
  const message = flash && (flash.kind === 'error'
    ? html`<div role="alert"><p>${flash.text}</p></div>`
    : html`<div class="notice" role="status"><p>${flash.text}</p></div>`);
  return html`${documentStart({ title: `${title} · fedgate console`, nonce, css: CSS })}
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<div class="top">
<a class="brand" href="/admin">fedgate console</a>
${user && html`<div class="who"><span>Signed in as <strong>${user.username}</strong>${user.admin ? '' : ' (group manager)'}</span>
<form method="post" action="/admin/signout"><input type="hidden" name="csrf" value="${user.csrf}"><button type="submit">Sign out</button></form></div>`}
</div>
${nav}
</header>
<main id="main" tabindex="-1">
${message}
${body}
</main>
<script nonce="${nonce}">
${COPY_SCRIPT}
</script>
</body>
</html>
`.toString();
}

/** The hidden CSRF field every form carries. */
export function csrfField(token: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${token}">`;
}

/** A time (seconds or milliseconds since the epoch, or ISO) for people: ISO 8601 in UTC to the second. */
export function when(value: unknown): string {
  if (value === undefined || value === null || value === '') return '';
  const n = typeof value === 'number' ? (value < 1e12 ? value * 1000 : value) : Date.parse(String(value));
  if (!Number.isFinite(n)) return String(value);
  return new Date(n).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** A "next page" link keeping the current filters. */
export function pager(path: string, query: Record<string, string | undefined>, next: string | null | undefined): SafeHtml {
  const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => !!e[1] && e[0] !== 'cursor'));
  const first = `${path}${params.size ? `?${params}` : ''}`;
  const nextParams = new URLSearchParams(params);
  if (next) nextParams.set('cursor', next);
  return html`<p class="pager">${query.cursor ? html`<a href="${first}">First page</a>` : ''}${next ? html`<a href="${`${path}?${nextParams}`}" rel="next">Next page</a>` : ''}</p>`;
}
