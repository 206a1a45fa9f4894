import { html, raw } from './html.ts';
import type { SafeHtml } from './html.ts';

/** Options of {@link layout}. */
export interface LayoutOptions {
  /** Page title; the document title becomes `<title> · fedgate`. */
  title: string;
  /** Content of the page's `<main>`. */
  body: SafeHtml;
  /** CSP nonce for the inline style block. */
  nonce: string;
  /** Document language; `en` by default. */
  lang?: 'en';
}

const MONO = 'ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace';

const CSS = raw(`
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--fg:#111827;--muted:#4b5563;--line:#6b7280;--accent:#1d4ed8;--on-accent:#fff;--focus:#1d4ed8;--err-bg:#fef2f2;--err-fg:#991b1b;--err-line:#b91c1c}
@media (prefers-color-scheme:dark){:root{--bg:#0b1120;--card:#1f2937;--fg:#f9fafb;--muted:#d1d5db;--line:#9ca3af;--accent:#93c5fd;--on-accent:#0b1120;--focus:#93c5fd;--err-bg:#450a0a;--err-fg:#fecaca;--err-line:#f87171}}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;padding:1rem;background:var(--bg);color:var(--fg);font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
main{max-width:28rem;margin:0 auto;padding:1.5rem;background:var(--card);border-radius:.75rem;box-shadow:0 1px 3px rgba(0,0,0,.25);overflow-wrap:break-word}
@media (min-width:32rem){main{margin-top:10vh;padding:2rem}}
h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}
h2{font-size:1.0625rem;margin:1.5rem 0 .5rem}
p,ul{margin:0 0 1rem}
ul ul{margin:.25rem 0 0}
li{margin:.25rem 0}
code{font-family:${MONO};font-size:.9375em;overflow-wrap:anywhere}
.muted{color:var(--muted)}
label{display:block;font-weight:600;margin:0 0 .25rem}
input:not([type=hidden]),textarea{display:block;width:100%;min-height:2.75rem;margin:0 0 1rem;padding:.5rem .75rem;font:inherit;color:var(--fg);background:var(--card);border:1px solid var(--line);border-radius:.375rem}
input[name=user_code]{font-family:${MONO};font-size:1.25rem;text-align:center;text-transform:uppercase;letter-spacing:.1em}
input[name=user_code]::placeholder{font-family:inherit;text-transform:none;letter-spacing:normal}
form{margin:0}
button{display:block;width:100%;min-height:2.75rem;margin:0 0 .75rem;padding:.5rem 1rem;font:inherit;font-weight:600;color:var(--on-accent);background:var(--accent);border:2px solid var(--accent);border-radius:.375rem;cursor:pointer}
button.secondary{color:var(--fg);background:transparent;border-color:var(--line)}
button:hover{text-decoration:underline}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
[role=alert]{margin:0 0 1rem;padding:.75rem 1rem;color:var(--err-fg);background:var(--err-bg);border:1px solid var(--err-line);border-left-width:.375rem;border-radius:.375rem}
[role=alert] p:last-child{margin:0}
.code{margin:0 0 1rem;padding:.75rem;font:600 2rem/1.2 ${MONO};letter-spacing:.15em;text-align:center;overflow-wrap:anywhere;border:1px dashed var(--line);border-radius:.375rem}
`.trim());

/**
 * The start of every page's document up to `</head>`: the same metadata
 * (no referrer, no indexing, light and dark), no outside assets, and the
 * inline stylesheet carrying the CSP nonce. The login pages and the console
 * both begin with it.
 */
export function documentStart({ title, nonce, css, lang = 'en' }: { title: string; nonce: string; css: SafeHtml; lang?: string }): SafeHtml {
  return html`<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta name="color-scheme" content="light dark">
<title>${title}</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">
${css}
</style>
</head>`;
}

/**
 * Wraps a page body in the complete HTML document shared by every page:
 * metadata, the inline stylesheet (carrying the CSP nonce) and one `<main>`.
 */
export function layout({ title, body, nonce, lang = 'en' }: LayoutOptions): string {
  return html`${documentStart({ title: `${title} · fedgate`, nonce, css: CSS, lang })}
<body>
<main>
${body}
</main>
</body>
</html>
`.toString();
}
