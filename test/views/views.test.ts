import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SafeHtml, escapeHtml, html, raw } from '../../src/views/html.ts';
import { layout } from '../../src/views/layout.ts';
import {
  consentPage,
  deviceConfirmPage,
  deviceInputPage,
  deviceSuccessPage,
  errorPage,
  loginPage,
  logoutPage,
  messagePage,
  postLogoutPage,
} from '../../src/views/pages.ts';

const NONCE = 'n0nce-AbC123+/=';
const EVIL = '<script>alert(1)</script>';
const EVIL_ESCAPED = '&lt;script&gt;alert(1)&lt;/script&gt;';
const QUOTY = `He said "no" & it's <b>done</b>`;
const QUOTY_ESCAPED = 'He said &quot;no&quot; &amp; it&#39;s &lt;b&gt;done&lt;/b&gt;';

const ISSUER = 'https://id.example.org';
const DEVICE_INPUT_FORM = `<form id="op.deviceInputForm" novalidate method="post" action="${ISSUER}/device">
  <input type="hidden" name="xsrf" value="x1"/>
  <input
    type="text" name="user_code" placeholder="Enter code" onfocus="this.select(); this.onfocus = undefined;" autofocus autocomplete="off"></input>
  </form>`;
const DEVICE_CONFIRM_FORM = `<form id="op.deviceConfirmForm" method="post" action="${ISSUER}/device">
<input type="hidden" name="xsrf" value="x2"/>
<input type="hidden" name="user_code" value="BCDF-GHJK"/>
<input type="hidden" name="confirm" value="yes"/>
</form>`;
const LOGOUT_FORM = `<form id="op.logoutForm" method="post" action="${ISSUER}/session/end/confirm"><input type="hidden" name="xsrf" value="x3"/></form>`;

/** Every page rendered with hostile values wherever the caller supplies text. */
const pages: Record<string, string> = {
  login: loginPage({
    nonce: NONCE,
    action: '/interaction/abc/login',
    abortAction: '/interaction/abc/abort',
    csrfToken: QUOTY,
    clientName: EVIL,
    username: QUOTY,
    error: QUOTY,
  }),
  consent: consentPage({
    nonce: NONCE,
    action: '/interaction/abc/confirm',
    abortAction: '/interaction/abc/abort',
    csrfToken: QUOTY,
    clientName: EVIL,
    accountName: QUOTY,
    scopes: [
      { value: 'openid', description: 'Your identity' },
      { value: EVIL, description: QUOTY },
    ],
    resources: [
      { audience: 'https://api.example.org', scopes: ['read', EVIL] },
      { audience: QUOTY, scopes: [] },
    ],
    offlineAccess: true,
  }),
  deviceInput: deviceInputPage({ nonce: NONCE, form: DEVICE_INPUT_FORM, error: 'invalid' }),
  deviceConfirm: deviceConfirmPage({
    nonce: NONCE,
    form: DEVICE_CONFIRM_FORM,
    clientName: EVIL,
    userCode: QUOTY,
  }),
  deviceSuccess: deviceSuccessPage({ nonce: NONCE, clientName: EVIL }),
  logout: logoutPage({ nonce: NONCE, form: LOGOUT_FORM, host: EVIL }),
  postLogout: postLogoutPage({ nonce: NONCE, clientName: EVIL }),
  error: errorPage({ nonce: NONCE, title: EVIL, error: QUOTY, description: QUOTY, requestId: EVIL }),
  message: messagePage({ nonce: NONCE, title: EVIL, message: QUOTY }),
};

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

function tags(doc: string, name: string): Array<{ tag: string; index: number }> {
  return [...doc.matchAll(new RegExp(`<${name}\\b[^>]*>`, 'gi'))].map((m) => ({ tag: m[0], index: m.index }));
}

describe('html', () => {
  it('escapes interpolated values', () => {
    assert.equal(escapeHtml(QUOTY), QUOTY_ESCAPED);
    assert.equal(html`<p title="${QUOTY}">${EVIL}</p>`.toString(), `<p title="${QUOTY_ESCAPED}">${EVIL_ESCAPED}</p>`);
  });

  it('renders null, undefined and false as nothing, numbers as text', () => {
    assert.equal(html`${null}${undefined}${false}${0}${1.5}`.toString(), '01.5');
    assert.equal(escapeHtml(undefined), '');
  });

  it('keeps SafeHtml and joins arrays', () => {
    const items = ['a<', 'b&'].map((s) => html`<li>${s}</li>`);
    assert.equal(html`<ul>${items}</ul>`.toString(), '<ul><li>a&lt;</li><li>b&amp;</li></ul>');
    assert.equal(html`${raw('<b>x</b>')}`.toString(), '<b>x</b>');
    assert.equal(html`${['<', raw('<i>')]}`.toString(), '&lt;<i>');
  });

  it('cannot be forged outside html and raw', () => {
    const Ctor = SafeHtml as unknown as new (token: symbol, value: string) => SafeHtml;
    assert.throws(() => new Ctor(Symbol('SafeHtml'), EVIL), TypeError);
  });
});

describe('layout', () => {
  it('builds a complete document', () => {
    const doc = layout({ title: 'T & C', body: html`<p>hi</p>`, nonce: NONCE });
    assert.match(doc, /^<!doctype html>\n<html lang="en">/);
    assert.match(doc, /<meta charset="utf-8">/);
    assert.match(doc, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(doc, /<meta name="referrer" content="no-referrer">/);
    assert.match(doc, /<title>T &amp; C · fedgate<\/title>/);
    assert.match(doc, /<main>\n<p>hi<\/p>\n<\/main>/);
    assert.match(doc, /prefers-color-scheme:dark/);
    assert.match(doc, /:focus-visible/);
  });

  it('escapes the nonce', () => {
    const doc = layout({ title: 't', body: html``, nonce: '"><script>' });
    assert.ok(doc.includes('<style nonce="&quot;&gt;&lt;script&gt;">'));
    assert.ok(!doc.includes('<script'));
  });
});

describe('pages', () => {
  for (const [name, doc] of Object.entries(pages)) {
    describe(name, () => {
      it('is a complete document with lang and one nonce-carrying style tag', () => {
        assert.match(doc, /^<!doctype html>\n<html lang="en">/);
        assert.match(doc, /<\/html>\n$/);
        const styles = tags(doc, 'style');
        assert.equal(styles.length, 1);
        assert.equal(attr(styles[0]!.tag, 'nonce'), NONCE);
        assert.equal(tags(doc, 'main').length, 1);
        assert.equal(tags(doc, 'h1').length, 1);
      });

      it('escapes hostile values', () => {
        assert.ok(!/<script/i.test(doc), 'no script element');
        assert.ok(!doc.includes('<b>done</b>'));
        assert.ok(!doc.includes(QUOTY));
        if (name !== 'deviceInput') {
          assert.ok(doc.includes(EVIL_ESCAPED) || doc.includes(QUOTY_ESCAPED));
        }
      });

      it('references no external assets', () => {
        for (const m of doc.matchAll(/\s(?:src|href|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)/gi)) {
          assert.ok(!/^(?:[a-z][a-z0-9+.-]*:)?\/\//i.test(m[1]!), `external reference ${m[0]}`);
        }
        assert.ok(!/@import/i.test(doc));
        assert.ok(!/url\(/i.test(doc));
        assert.equal(tags(doc, 'link').filter((l) => attr(l.tag, 'rel') !== 'icon').length, 0);
        assert.equal(tags(doc, 'img').length, 0);
      });

      it('labels every visible input', () => {
        for (const { tag, index } of tags(doc, 'input')) {
          if (attr(tag, 'type')?.toLowerCase() === 'hidden') continue;
          const id = attr(tag, 'id');
          if (id !== undefined && doc.includes(`<label for="${id}">`)) continue;
          const formStart = doc.lastIndexOf('<form', index);
          assert.ok(formStart >= 0 && doc.indexOf('</form>', formStart) > index, `unlabelled input outside a form: ${tag}`);
          const before = doc.slice(doc.indexOf('<main>'), formStart);
          assert.match(before, /<p[^>]*>[^<]*\b(?:Enter|Type)\b[^<]+<\/p>/, `no explanation for ${tag}`);
        }
      });

      it('points every form attribute at a form on the page', () => {
        for (const { tag } of tags(doc, 'button')) {
          assert.equal(attr(tag, 'type'), 'submit');
          const target = attr(tag, 'form');
          if (target !== undefined) assert.ok(doc.includes(`<form id="${target}"`), `missing form ${target}`);
          else assert.ok(doc.lastIndexOf('<form', doc.indexOf(tag)) > doc.lastIndexOf('</form>', doc.indexOf(tag)));
        }
      });
    });
  }
});

describe('loginPage', () => {
  const doc = pages.login!;

  it('shows the client and the fields with autocomplete', () => {
    assert.ok(doc.includes(`Sign in to continue to <strong>${EVIL_ESCAPED}</strong>`));
    assert.match(doc, /<input id="username" name="username" type="text" value="He said &quot;no&quot;[^>]*autocomplete="username"/);
    assert.match(doc, /<input id="password" name="password" type="password" autocomplete="current-password"/);
    assert.match(doc, />Sign in<\/button>/);
  });

  it('shows the error in an alert', () => {
    assert.ok(doc.includes(`<div role="alert" id="login-error"><p>${QUOTY_ESCAPED}</p></div>`));
  });

  it('puts the csrf token in both forms', () => {
    const forms = doc.match(/<form [^]*?<\/form>/g) ?? [];
    assert.equal(forms.length, 2);
    assert.match(forms[0]!, /action="\/interaction\/abc\/login"/);
    assert.match(forms[1]!, /action="\/interaction\/abc\/abort"[^]*>Cancel<\/button>/);
    for (const f of forms) assert.ok(f.includes(`<input type="hidden" name="csrf" value="${QUOTY_ESCAPED}">`));
  });

  it('omits the alert without an error', () => {
    const ok = loginPage({ nonce: NONCE, action: '/a', abortAction: '/b', csrfToken: 't', clientName: 'App' });
    assert.ok(!ok.includes('role="alert"'));
    assert.ok(!ok.includes('aria-describedby'));
  });
});

describe('consentPage', () => {
  const doc = pages.consent!;

  it('lists scopes, resources and offline access', () => {
    assert.ok(doc.includes(`<li>Your identity <span class="muted">(<code>openid</code>)</span></li>`));
    assert.ok(doc.includes(`<li>${QUOTY_ESCAPED} <span class="muted">(<code>${EVIL_ESCAPED}</code>)</span></li>`));
    assert.ok(doc.includes(`<li><code>https://api.example.org</code><ul><li><code>read</code></li><li><code>${EVIL_ESCAPED}</code></li></ul></li>`));
    assert.ok(doc.includes(`<li><code>${QUOTY_ESCAPED}</code> <span class="muted">(basic access)</span></li>`));
    assert.match(doc, /keep access while you are away \(refresh token\)/);
    assert.ok(doc.includes(`signed in as <strong>${QUOTY_ESCAPED}</strong>`));
  });

  it('has Allow and Deny forms, each with the csrf token', () => {
    const forms = doc.match(/<form [^]*?<\/form>/g) ?? [];
    assert.equal(forms.length, 2);
    assert.match(forms[0]!, /action="\/interaction\/abc\/confirm"[^]*>Allow<\/button>/);
    assert.match(forms[1]!, /action="\/interaction\/abc\/abort"[^]*>Deny<\/button>/);
    for (const f of forms) assert.ok(f.includes(`<input type="hidden" name="csrf" value="${QUOTY_ESCAPED}">`));
  });

  it('leaves out empty sections', () => {
    const plain = consentPage({
      nonce: NONCE,
      action: '/a',
      abortAction: '/b',
      csrfToken: 't',
      clientName: 'App',
      accountName: 'alice',
      scopes: [],
      resources: [],
      offlineAccess: false,
    });
    assert.ok(!plain.includes('<ul>'));
    assert.ok(!plain.includes('refresh token'));
  });
});

describe('device pages', () => {
  it('embeds the input form verbatim with explanation and submit button', () => {
    const doc = pages.deviceInput!;
    assert.ok(doc.includes(DEVICE_INPUT_FORM));
    assert.match(doc, /Enter the code shown on your device/);
    assert.ok(doc.includes('<button type="submit" form="op.deviceInputForm">Continue</button>'));
  });

  it('maps input errors to messages', () => {
    const messages = {
      invalid: 'The code you entered is not valid or has expired. Check it and try again.',
      aborted: 'The sign-in request was cancelled.',
      other: 'Something went wrong. Try again.',
    } as const;
    for (const [error, text] of Object.entries(messages)) {
      const doc = deviceInputPage({ nonce: NONCE, form: DEVICE_INPUT_FORM, error: error as keyof typeof messages });
      assert.ok(doc.includes(`<div role="alert"><p>${text}</p></div>`), error);
    }
    assert.ok(!deviceInputPage({ nonce: NONCE, form: DEVICE_INPUT_FORM }).includes('role="alert"'));
  });

  it('shows the code for confirmation with Continue and Abort', () => {
    const doc = pages.deviceConfirm!;
    assert.ok(doc.includes(DEVICE_CONFIRM_FORM));
    assert.ok(doc.includes(`<p class="code">${QUOTY_ESCAPED}</p>`));
    assert.ok(doc.includes('<button type="submit" form="op.deviceConfirmForm">Continue</button>'));
    assert.match(doc, /<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes"[^>]*>Abort<\/button>/);
  });

  it('reports success', () => {
    assert.match(pages.deviceSuccess!, /you can close this page/);
  });
});

describe('logout pages', () => {
  it('asks to confirm with the trusted form', () => {
    const doc = pages.logout!;
    assert.ok(doc.includes(LOGOUT_FORM));
    assert.ok(doc.includes(`<h1>Sign out of ${EVIL_ESCAPED}?</h1>`));
    assert.ok(doc.includes('<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>'));
    assert.match(doc, /<button type="submit" form="op.logoutForm"(?: class="secondary")?>No, stay signed in<\/button>/);
  });

  it('confirms sign-out with and without a client', () => {
    assert.match(pages.postLogout!, /<h1>You are signed out<\/h1>/);
    assert.ok(pages.postLogout!.includes(EVIL_ESCAPED));
    assert.match(postLogoutPage({ nonce: NONCE }), /<h1>You are signed out<\/h1>\n<p>You can close this page.<\/p>/);
  });
});

describe('errorPage', () => {
  it('shows code, description, hint and request id escaped', () => {
    const doc = pages.error!;
    assert.ok(doc.includes(`<title>${EVIL_ESCAPED} · fedgate</title>`));
    assert.ok(doc.includes(`<code>${QUOTY_ESCAPED}</code>`));
    assert.ok(doc.includes(`<p>${QUOTY_ESCAPED}</p>`));
    assert.match(doc, /role="alert"/);
    assert.match(doc, /Return to the application and try again/);
    assert.ok(doc.includes(`<code>${EVIL_ESCAPED}</code></p>`));
  });

  it('uses a default title and leaves out what is not given', () => {
    const doc = errorPage({ nonce: NONCE, error: 'invalid_request' });
    assert.match(doc, /<h1>Something went wrong<\/h1>/);
    assert.match(doc, /<code>invalid_request<\/code>/);
    assert.ok(!doc.includes('request ID'));
    assert.ok(!/\bat .+:\d+:\d+/.test(doc));
  });
});

describe('messagePage', () => {
  it('escapes text and keeps SafeHtml', () => {
    assert.ok(pages.message!.includes(`<p>${QUOTY_ESCAPED}</p>`));
    const doc = messagePage({ nonce: NONCE, title: 'Done', message: html`<strong>${'a&b'}</strong>` });
    assert.ok(doc.includes('<p><strong>a&amp;b</strong></p>'));
  });
});
