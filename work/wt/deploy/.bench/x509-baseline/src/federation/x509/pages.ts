/**
 * The pages of X.509 certificate login and linking: what went wrong with a
 * certificate and what to do about it, and the confirmation of a link. Built
 * like src/views/pages.ts: every value is escaped by the html`` tag.
 */
import { html } from '../../views/html.ts';
import { layout } from '../../views/layout.ts';

/** Options of {@link certificateProblemPage}. */
export interface CertificateProblemPageOptions {
  nonce: string;
  title: string;
  /** What is wrong, for people. */
  message: string;
  /** What to do about it. */
  hint?: string | undefined;
  /** Stable code (audit reason), shown so the user can quote it. */
  reason: string;
  /** Canonical DNs of the certificate, when it could be read. */
  subject?: string | undefined;
  issuer?: string | undefined;
  requestId?: string | undefined;
  /** Where the user can go back to (the sign-in page of the interaction). */
  back?: { href: string; label: string } | undefined;
}

/** Options of {@link certificateLinkedPage}. */
export interface CertificateLinkedPageOptions {
  nonce: string;
  /** The account the certificate is now linked to, as the user knows it. */
  accountName: string;
  subject: string;
  issuer: string;
  /** It was linked to this account already. */
  already: boolean;
}

function certificateDetails(subject: string | undefined, issuer: string | undefined) {
  if (!subject && !issuer) return undefined;
  return html`<h2>Certificate</h2>
<ul>
${subject && html`<li>Subject: <code>${subject}</code></li>\n`}${issuer && html`<li>Issued by: <code>${issuer}</code></li>\n`}</ul>`;
}

/** A certificate login or link that could not be completed, with what to do next. */
export function certificateProblemPage({ nonce, title, message, hint, reason, subject, issuer, requestId, back }: CertificateProblemPageOptions): string {
  const body = html`<h1>${title}</h1>
<div role="alert">
<p>${message}</p>
</div>
${hint && html`<p>${hint}</p>`}
${back && html`<p><a href="${back.href}">${back.label}</a></p>`}
${certificateDetails(subject, issuer)}
<p class="muted">Reason: <code>${reason}</code>${requestId && html` · request ID <code>${requestId}</code>`}</p>`;
  return layout({ title, body, nonce });
}

/** Confirms that a certificate is linked to the signed-in account. */
export function certificateLinkedPage({ nonce, accountName, subject, issuer, already }: CertificateLinkedPageOptions): string {
  const title = already ? 'Certificate already linked' : 'Certificate linked';
  const body = html`<h1>${title}</h1>
<p>${already ? 'This certificate was already linked to' : 'This certificate is now linked to'} your account <strong>${accountName}</strong>. You can sign in with it from now on.</p>
${certificateDetails(subject, issuer)}
<p>You can close this page and return to the application.</p>`;
  return layout({ title, body, nonce });
}
