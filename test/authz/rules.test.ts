import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatPolicyCsv, hierarchyLines, isGroupPath, lineKey, parsePolicyCsv, validateLine } from '../../src/authz/rules.ts';
import { DOMAINS, type PolicyLine } from '../../src/authz/types.ts';

const domains: ReadonlySet<string> = new Set(DOMAINS);
const p = (...values: string[]): PolicyLine => ({ ptype: 'p', values });
const g = (...values: string[]): PolicyLine => ({ ptype: 'g', values });
const g2 = (...values: string[]): PolicyLine => ({ ptype: 'g2', values });

describe('parsePolicyCsv', () => {
  test('reads lines, skips comments and blank lines, trims values, pads 5-value p lines', () => {
    const text = [
      '# a comment',
      '',
      '   ',
      '  # an indented comment',
      'p, /cms, data, /store/cms/**, read, allow, storage.read',
      'p,user:bob,data,/store/atlas/secret/**,*,deny,',
      'p, /cms, orchestrator, /deployments/**, read, allow',
      '\tg ,  user:alice ,/cms\t',
      'g2, GET, read, data\r',
      'p, /a, scopes, https://x.demo/#frag, ml.x, allow,',
    ].join('\n');
    const { lines, problems } = parsePolicyCsv(text, 'f.csv');
    assert.deepEqual(problems, []);
    assert.deepEqual(lines, [
      p('/cms', 'data', '/store/cms/**', 'read', 'allow', 'storage.read'),
      p('user:bob', 'data', '/store/atlas/secret/**', '*', 'deny', ''),
      p('/cms', 'orchestrator', '/deployments/**', 'read', 'allow', ''),
      g('user:alice', '/cms'),
      g2('GET', 'read', 'data'),
      p('/a', 'scopes', 'https://x.demo/#frag', 'ml.x', 'allow', ''),
    ]);
  });

  test('supports double-quoted values: commas, quotes, spaces and newlines kept', () => {
    const text = 'p, "user:a,b", data, " /x ", "say ""hi""", allow, ""\ng, "user:multi\nline", /g\n';
    const { lines, problems } = parsePolicyCsv(text, 'q.csv');
    assert.deepEqual(problems, []);
    assert.deepEqual(lines, [p('user:a,b', 'data', ' /x ', 'say "hi"', 'allow', ''), g('user:multi\nline', '/g')]);
  });

  test('ignores a byte order mark', () => {
    assert.deepEqual(parsePolicyCsv('\uFEFF# comment\ng, user:a, /x\n', 'bom.csv'), { lines: [g('user:a', '/x')], problems: [] });
  });

  test('handles CRLF line ends and a missing final newline', () => {
    const { lines, problems } = parsePolicyCsv('g, user:a, /x\r\ng, user:b, /y', 'crlf.csv');
    assert.deepEqual(problems, []);
    assert.deepEqual(lines, [g('user:a', '/x'), g('user:b', '/y')]);
  });

  const bad: Array<[text: string, problem: string]> = [
    ['x, a, b', 'f.csv:1: unknown line type "x" (expected p, g or g2)'],
    [', a', 'f.csv:1: unknown line type "" (expected p, g or g2)'],
    ['P, a, b, c, d, e, f', 'f.csv:1: unknown line type "P" (expected p, g or g2)'],
    ['p, a, b, c, d', 'f.csv:1: p needs 6 values (subject, domain, object, action, effect, scope), got 4'],
    ['p, a, b, c, d, e, f, g', 'f.csv:1: p needs 6 values (subject, domain, object, action, effect, scope), got 7'],
    ['g, a', 'f.csv:1: g needs 2 values (member, group), got 1'],
    ['g, a, b,', 'f.csv:1: g needs 2 values (member, group), got 3'],
    ['g2, GET, read', 'f.csv:1: g2 needs 3 values (method, operation, domain), got 2'],
    ['# ok\n\ng, a"b, c', 'f.csv:3: a value with a quote must be quoted as a whole ("a ""b"" c")'],
    ['g, "a" b, c', 'f.csv:1: unexpected text after a closing quote'],
    ['g, a, /b\ng, "unterminated, /c\ng, d, /e', 'f.csv:2: unterminated quoted value'],
  ];
  for (const [text, problem] of bad) {
    test(`reports ${JSON.stringify(text)}`, () => {
      const result = parsePolicyCsv(text, 'f.csv');
      assert.ok(result.problems.includes(problem), `got ${JSON.stringify(result.problems)}`);
    });
  }

  test('keeps the good lines around a bad one, with the right line numbers', () => {
    const { lines, problems } = parsePolicyCsv('g, user:a, /x\ng, oops\n\n# c\ng, user:b, /y\n', 'm.csv');
    assert.deepEqual(lines, [g('user:a', '/x'), g('user:b', '/y')]);
    assert.deepEqual(problems, ['m.csv:2: g needs 2 values (member, group), got 1']);
  });
});

describe('formatPolicyCsv', () => {
  test('round-trips through parsePolicyCsv, quoting where needed', () => {
    const lines: PolicyLine[] = [
      p('/cms', 'data', '/store/cms/**', 'read', 'allow', 'storage.read'),
      p('user:bob', 'data', '/store/atlas/secret/**', '*', 'deny', ''),
      p('user:a,b', 'data', ' padded ', 'say "hi"', 'allow', ''),
      p('user:x', 'data', 'multi\nline', '#hash', 'allow', 'a\r\nb'),
      p('', '', '', '', '', ''),
      g('user:alice', '/cms'),
      g2('POST', 'deploy', 'orchestrator'),
    ];
    const text = formatPolicyCsv(lines);
    assert.match(text, /^p, user:bob, data, \/store\/atlas\/secret\/\*\*, \*, deny,$/m);
    assert.match(text, /^p, "user:a,b", data, " padded ", "say ""hi""", allow,$/m);
    const parsed = parsePolicyCsv(text, 'rt.csv');
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(parsed.lines, lines);
    assert.equal(formatPolicyCsv([]), '');
  });

  test('round-trips the shipped policy files', async () => {
    const { readFile } = await import('node:fs/promises');
    for (const name of ['policy.csv', 'scopes.csv']) {
      const first = parsePolicyCsv(await readFile(new URL(`../../policies/${name}`, import.meta.url), 'utf8'), name);
      assert.deepEqual(first.problems, []);
      assert.deepEqual(parsePolicyCsv(formatPolicyCsv(first.lines), name).lines, first.lines);
    }
  });
});

describe('lineKey', () => {
  test('is equal exactly for equal lines', () => {
    assert.equal(lineKey(g('a', 'b')), lineKey(g('a', 'b')));
    assert.notEqual(lineKey(g('a', 'b')), lineKey(g2('a', 'b')));
    assert.notEqual(lineKey(g('a,b', 'c')), lineKey(g('a', 'b,c')));
    assert.notEqual(lineKey(p('a', 'b', 'c', 'd', 'allow', '')), lineKey(p('a', 'b', 'c', 'd', 'allow')));
    assert.notEqual(lineKey(g('a"', 'b')), lineKey(g('a', '"b')));
  });
});

describe('validateLine', () => {
  const valid: PolicyLine[] = [
    p('/cms', 'data', '/store/cms/**', 'read', 'allow', 'storage.read'),
    p('/cms/production', 'data', '/store/cms/**', 'write', 'allow', 'storage.modify'),
    p('user:bob', 'data', '/store/atlas/secret/**', '*', 'deny', ''),
    p('client:demo-service', 'orchestrator', '/deployments/**', 'read', 'allow', 'compute.read'),
    p('/ml-users', 'ml', '/v1/models/*/infer', 'inference', 'allow', 'ml.inference'),
    p('/a_b.c-d/E9', 'sync', '*', 'GET', 'allow', ''),
    p('/x', 'data', '/', 'OPTIONS', 'allow', ''),
    p('/x', 'data', '/**', 'undeploy', 'allow', ''),
    p('/x', 'data', '/a/*/b', 'op_1.x-y', 'allow', ''),
    p('/cms', 'scopes', '*', 'storage.read:/store/cms', 'allow', ''),
    p('/cms', 'scopes', 'https://ml.demo', 'ml.inference', 'allow', ''),
    p('/cms', 'scopes', 'urn:example:aud', '*', 'allow', ''),
    p('user:bob', 'scopes', '*', 'storage.read:/store/atlas/secret', 'deny', ''),
    g('user:alice', '/cms'),
    g('client:demo-service', '/cms'),
    g('/cms/production', '/cms'),
    g2('POST', 'deploy', 'orchestrator'),
    g2('DELETE', 'write', 'scopes'),
    // Token exchange: what a client may obtain, and whose tokens it may exchange.
    p('client:portal', 'exchange', 'https://orchestrator.demo', 'delegate', 'allow', ''),
    p('client:portal', 'exchange', '*', 'impersonate', 'allow', ''),
    p('client:orchestrator', 'exchange', 'https://storage.demo', 'storage.read:/store/cms', 'allow', ''),
    p('client:orchestrator', 'exchange', 'https://storage.demo', 'offline_access', 'deny', ''),
    p('/cms', 'exchange-by', 'client:portal', 'delegate', 'allow', ''),
    p('client:portal', 'exchange-by', '*', '*', 'allow', ''),
  ];
  for (const line of valid) {
    test(`accepts ${line.ptype}, ${line.values.join(', ')}`, () => {
      assert.equal(validateLine(line, domains), undefined);
    });
  }

  const invalid: Array<[line: PolicyLine, reason: RegExp]> = [
    [{ ptype: 'x' as 'p', values: [] }, /^unknown line type "x" \(expected p, g or g2\)$/],
    [{ ptype: 'g', values: ['user:a', 7 as unknown as string] }, /^g values must be strings$/],
    [p('/cms', 'data', '/x', 'read', 'allow'), /^p needs 6 values \(subject, domain, object, action, effect, scope\), got 5$/],
    [g('user:a'), /^g needs 2 values \(member, group\), got 1$/],
    [g2('GET', 'read'), /^g2 needs 3 values \(method, operation, domain\), got 2$/],
    // Subjects.
    [p('alice', 'data', '/x', 'read', 'allow', ''), /^invalid subject "alice": expected user:<name>, client:<id> or a group path/],
    [p('user:', 'data', '/x', 'read', 'allow', ''), /^invalid subject "user:"/],
    [p('user:a b', 'data', '/x', 'read', 'allow', ''), /^invalid subject "user:a b"/],
    [p('/', 'data', '/x', 'read', 'allow', ''), /^invalid subject "\/"/],
    [p('/cms/', 'data', '/x', 'read', 'allow', ''), /^invalid subject "\/cms\/"/],
    [p('/cms//a', 'data', '/x', 'read', 'allow', ''), /^invalid subject/],
    [p('/cms/..', 'data', '/x', 'read', 'allow', ''), /^invalid subject "\/cms\/\.\."/],
    [p('/cms/x y', 'data', '/x', 'read', 'allow', ''), /^invalid subject/],
    [p('*', 'data', '/x', 'read', 'allow', ''), /^invalid subject "\*"/],
    // Domains.
    [p('/cms', 'storage', '/x', 'read', 'allow', ''), /^unknown domain "storage" \(known: orchestrator, data, ml, sync, scopes, exchange, exchange-by\)$/],
    [p('/cms', '', '/x', 'read', 'allow', ''), /^unknown domain ""/],
    // Token exchange.
    [p('/cms', 'exchange', 'https://storage.demo', 'delegate', 'allow', ''), /^a rule in exchange is about the client that exchanges: its subject must be client:<id>$/],
    [p('client:portal', 'exchange', '/store', 'delegate', 'allow', ''), /^invalid audience "\/store": expected \* or an absolute URI$/],
    [p('client:portal', 'exchange', 'https://a.example', 'with space', 'allow', ''), /^invalid action "with space": in exchange/],
    [p('/cms', 'exchange-by', 'https://storage.demo', 'delegate', 'allow', ''), /^invalid object "https:\/\/storage\.demo": in exchange-by, expected client:<id>/],
    [p('/cms', 'exchange-by', 'client:portal', 'storage.read', 'allow', ''), /^invalid action "storage\.read": in exchange-by, expected delegate, impersonate or \*$/],
    // Objects in access domains.
    [p('/cms', 'data', '', 'read', 'allow', ''), /^invalid object pattern "": expected \* or a path pattern starting with \/$/],
    [p('/cms', 'data', 'store/cms', 'read', 'allow', ''), /^invalid object pattern "store\/cms": expected \*/],
    [p('/cms', 'data', 'https://storage.demo', 'read', 'allow', ''), /^invalid object pattern .*: expected \*/],
    [p('/cms', 'data', '/store cms', 'read', 'allow', ''), /: it contains whitespace$/],
    [p('/cms', 'data', '/store//cms', 'read', 'allow', ''), /: it has an empty segment/],
    [p('/cms', 'data', '/store/cms/', 'read', 'allow', ''), /: it has an empty segment/],
    [p('/cms', 'data', '/store/../etc', 'read', 'allow', ''), /: it has a \. or \.\. segment$/],
    [p('/cms', 'data', '/store/./x', 'read', 'allow', ''), /: it has a \. or \.\. segment$/],
    [p('/cms', 'data', '/store/**/x', 'read', 'allow', ''), /: \*\* is only allowed as the last segment$/],
    // Objects in the scopes domain.
    [p('/cms', 'scopes', '/store', 'storage.read', 'allow', ''), /^invalid audience "\/store": expected \* or an absolute URI$/],
    [p('/cms', 'scopes', 'storage.demo', 'storage.read', 'allow', ''), /^invalid audience/],
    [p('/cms', 'scopes', 'https://a b.demo', 'storage.read', 'allow', ''), /^invalid audience/],
    // Actions.
    [p('/cms', 'data', '/x', 'Get', 'allow', ''), /^invalid action "Get": expected \*, an HTTP method in upper case \(GET HEAD POST PUT PATCH DELETE OPTIONS\) or an operation name/],
    [p('/cms', 'data', '/x', 'TRACE', 'allow', ''), /^invalid action "TRACE"/],
    [p('/cms', 'data', '/x', '1read', 'allow', ''), /^invalid action "1read"/],
    [p('/cms', 'data', '/x', '', 'allow', ''), /^invalid action ""/],
    [p('/cms', 'data', '/x', 'storage.read:/x', 'allow', ''), /^invalid action "storage\.read:\/x"/],
    [p('/cms', 'scopes', '*', 'a b', 'allow', ''), /^invalid action "a b": expected \* or a scope \(no spaces or quotes\)$/],
    [p('/cms', 'scopes', '*', '', 'allow', ''), /^invalid action ""/],
    [p('/cms', 'scopes', '*', 'a"b', 'allow', ''), /^invalid action/],
    // Effects.
    [p('/cms', 'data', '/x', 'read', 'Allow', ''), /^invalid effect "Allow": expected allow or deny$/],
    [p('/cms', 'data', '/x', 'read', '', ''), /^invalid effect ""/],
    // Required scopes.
    [p('/cms', 'data', '/x', 'read', 'allow', 'a b'), /^invalid required scope "a b": expected a scope \(no spaces or quotes\) or nothing$/],
    [p('/cms', 'data', '/x', 'read', 'allow', 'a\\b'), /^invalid required scope/],
    [p('/cms', 'data', '/x', 'read', 'deny', 'storage.read'), /^a deny rule cannot require a scope \("storage\.read"\)/],
    // g and g2.
    [g('alice', '/cms'), /^invalid member "alice": expected user:<name>, client:<id> or a group path/],
    [g('user:alice', 'cms'), /^invalid group "cms": expected a group path such as \/cms$/],
    [g('user:alice', 'user:bob'), /^invalid group "user:bob"/],
    [g2('get', 'read', 'data'), /^invalid method "get": expected an HTTP method in upper case/],
    [g2('GET', 'Read', 'data'), /^invalid operation "Read": expected a name of lower-case letters/],
    [g2('GET', 'read', 'nowhere'), /^unknown domain "nowhere"/],
  ];
  for (const [line, reason] of invalid) {
    test(`rejects ${line.ptype}, ${JSON.stringify(line.values)}`, () => {
      const problem = validateLine(line, domains);
      assert.ok(problem, 'expected a problem');
      assert.match(problem, reason);
    });
  }

  test('lower-case method names are operation names, so they are valid actions', () => {
    assert.equal(validateLine(p('/cms', 'data', '/x', 'get', 'allow', ''), domains), undefined);
  });

  test('extra domains are access domains', () => {
    assert.equal(validateLine(p('/cms', 'wiki', '/pages/**', 'GET', 'allow', ''), new Set([...DOMAINS, 'wiki'])), undefined);
    assert.equal(validateLine(g2('GET', 'read', 'wiki'), new Set([...DOMAINS, 'wiki'])), undefined);
  });
});

describe('hierarchyLines', () => {
  test('makes every group a member of its parent, once, including unnamed parents', () => {
    assert.deepEqual(hierarchyLines(['/cms', '/cms/production', '/atlas', '/a/b/c', '/a/b', '/cms/production']), [
      g('/cms/production', '/cms'),
      g('/a/b/c', '/a/b'),
      g('/a/b', '/a'),
    ]);
    assert.deepEqual(hierarchyLines([]), []);
    assert.deepEqual(hierarchyLines(['cms/x', '/', '/a//b', '/a/../b', '']), []);
  });

  test('isGroupPath', () => {
    for (const ok of ['/a', '/a/b', '/A-9_.x/y']) assert.equal(isGroupPath(ok), true, ok);
    for (const bad of ['', '/', 'a', '/a/', '//a', '/a/./b', '/..', '/a b', '/a:b']) assert.equal(isGroupPath(bad), false, bad);
  });
});
