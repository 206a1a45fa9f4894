/**
 * Reading SAML metadata (SAML metadata §2): a single EntityDescriptor or an
 * EntitiesDescriptor aggregate of thousands, optionally signed by a
 * federation. Only what the SP needs is kept per identity provider: the
 * HTTP-Redirect SSO endpoint, the signing certificates, the names and logo
 * for discovery, and the scopes it may assert. The DOM is dropped afterwards.
 */
import { createHash, timingSafeEqual, verify, type Hash } from 'node:crypto';
import { ExclusiveCanonicalization } from 'xml-crypto';
import { attribute, certificateToPem, child, children, detach, NS, parseDuration, parseInstant, parseXml, text, XmlError } from './xml.ts';
import { FedgateError } from '../../util/errors.ts';

/** SAML bindings §3.4: the binding AuthnRequests are sent with. */
export const HTTP_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
/** REFEDS entity category for identity providers that ask not to be listed in discovery. */
export const HIDE_FROM_DISCOVERY = 'http://refeds.org/category/hide-from-discovery';
const ENTITY_CATEGORY = 'http://macedir.org/entity-category';

/** An identity provider, as the bridge uses it. */
export interface IdpRecord {
  entityID: string;
  /** mdui:DisplayName (English preferred), else OrganizationDisplayName, else the entityID. */
  displayName: string;
  /** A logo URL (mdui:Logo, the smallest); https or data: only. */
  logo?: string | undefined;
  /** SingleSignOnService location for the HTTP-Redirect binding. */
  ssoUrl: string;
  /** PEM certificates of KeyDescriptors for signing (or without `use`). */
  signingCertificates: string[];
  /** mdrpi:RegistrationInfo registrationAuthority (the federation that registered it), its own or its EntitiesDescriptor's. */
  registrationAuthority?: string | undefined;
  /** shibmd:Scope values; empty when the metadata declares none. */
  scopes: Array<{ value: string; regexp: boolean }>;
  /** Listed in discovery unless the entity asks to be hidden (REFEDS hide-from-discovery). */
  hidden: boolean;
  /** The earliest validUntil on the path to this entity, epoch ms. */
  validUntil?: number | undefined;
  /** Lower-cased, accent-free names and entityID, for search. */
  searchText: string;
  /** The display name, lower-cased and accent-free (search ranks prefix matches first). */
  searchName: string;
}

/** A parsed metadata document. */
export interface ParsedMetadata {
  idps: IdpRecord[];
  /** validUntil of the document element, epoch ms. */
  validUntil?: number | undefined;
  /** cacheDuration of the document element, seconds. */
  cacheDurationSeconds?: number | undefined;
  /** Entities in the document (identity providers or not). */
  entities: number;
  /** Whether a signature was checked (false for trusted unsigned files). */
  verified: boolean;
}

/** Why a metadata document was refused; `code` is what alerts carry. */
export class MetadataError extends FedgateError {
  readonly code: 'malformed' | 'unsigned' | 'signature_invalid' | 'weak_algorithm' | 'expired' | 'no_entities';
  constructor(code: MetadataError['code'], message: string) {
    super(code, message);
    this.code = code;
  }
}

/** Options of {@link parseMetadata}. */
export interface ParseMetadataOptions {
  /** PEM certificate the document must be signed with; absent = not checked (trusted local file). */
  signingCertificate?: string | undefined;
  /** Accept RSA-SHA1 / SHA-1 signatures. */
  allowSha1?: boolean | undefined;
  /** Current time, epoch ms. */
  now?: number | undefined;
}

/** Algorithm URIs of a signature: SignatureMethod and every DigestMethod. */
export function signatureAlgorithms(signature: Element): string[] {
  const signedInfo = child(signature, NS.dsig, 'SignedInfo');
  if (!signedInfo) return [];
  const out: string[] = [];
  const method = child(signedInfo, NS.dsig, 'SignatureMethod');
  if (method) out.push(method.getAttribute('Algorithm') ?? '');
  for (const ref of children(signedInfo, NS.dsig, 'Reference')) {
    const digest = child(ref, NS.dsig, 'DigestMethod');
    if (digest) out.push(digest.getAttribute('Algorithm') ?? '');
  }
  return out;
}

const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const ENVELOPED = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
/** SignatureMethod → node:crypto hash (RSA PKCS#1 v1.5, RFC 6931 §2.3.2). */
const SIGNATURE_HASHES: Record<string, string> = {
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha384': 'sha384',
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512': 'sha512',
  'http://www.w3.org/2000/09/xmldsig#rsa-sha1': 'sha1',
};
/** DigestMethod → node:crypto hash. */
const DIGEST_HASHES: Record<string, string> = {
  'http://www.w3.org/2001/04/xmlenc#sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#sha384': 'sha384',
  'http://www.w3.org/2001/04/xmlenc#sha512': 'sha512',
  'http://www.w3.org/2000/09/xmldsig#sha1': 'sha1',
};

/** The InclusiveNamespaces PrefixList of an exc-c14n method or transform (RFC 3741 §3). */
function inclusivePrefixes(element: Element): string[] {
  const inclusive = child(element, EXC_C14N, 'InclusiveNamespaces');
  return (inclusive?.getAttribute('PrefixList') ?? '').split(/\s+/).filter(Boolean).map((p) => (p === '#default' ? '' : p));
}

/** Namespace declarations in scope at `element` from its ancestors, nearest first (for exc-c14n's InclusiveNamespaces). */
function ancestorNamespaces(element: Element): Array<{ prefix: string; namespaceURI: string }> {
  const seen = new Set<string>();
  const out: Array<{ prefix: string; namespaceURI: string }> = [];
  for (let node = element.parentNode; node && node.nodeType === 1; node = node.parentNode) {
    const attrs = (node as Element).attributes;
    for (let i = 0; i < attrs.length; i += 1) {
      const attr = attrs[i]!;
      if (attr.prefix !== 'xmlns' || seen.has(attr.localName)) continue;
      seen.add(attr.localName);
      if (attr.value) out.push({ prefix: attr.localName, namespaceURI: attr.value });
    }
  }
  return out;
}

/** How many elements at or under `element` carry `id` as their ID (ID, Id or id, as reference resolution does). */
function countIds(element: Element, id: string): number {
  let found = 0;
  const stack: Element[] = [element];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.getAttribute('ID') === id || node.getAttribute('Id') === id || node.getAttribute('id') === id) found += 1;
    for (let c = node.firstChild; c; c = c.nextSibling) if (c.nodeType === 1) stack.push(c as Element);
  }
  return found;
}

/**
 * A document split at its top level without building one tree for all of
 * it: the document element's start tag, and each child (element, text,
 * comment...) by position. An aggregate of thousands of entities is then
 * parsed one entity at a time, which keeps memory to one entity's tree.
 */
interface TopLevel {
  /** The document element's start tag, e.g. `<md:EntitiesDescriptor ...>`. */
  startTag: string;
  /** Its qualified name. */
  name: string;
  selfClosing: boolean;
  children: Array<{ kind: 'element' | 'text' | 'comment' | 'other'; start: number; end: number }>;
}

/** Index of the `>` closing the tag that starts at `from`, skipping quoted attribute values. */
function tagEnd(xml: string, from: number): number {
  let quote = '';
  for (let i = from + 1; i < xml.length; i += 1) {
    const c = xml[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '>') return i;
    else if (c === '<') break;
  }
  throw new MetadataError('malformed', 'not well-formed XML (unterminated tag)');
}

/**
 * Scans the top level of `xml`: markup boundaries only. Every piece is
 * then parsed by the real parser, which refuses anything this scan got wrong.
 *
 * @throws MetadataError
 */
function scanTopLevel(xml: string): TopLevel {
  const malformed = (why: string): never => {
    throw new MetadataError('malformed', `not well-formed XML (${why})`);
  };
  const skipMisc = (from: number): number => {
    let i = from;
    for (;;) {
      while (i < xml.length && /[\s\uFEFF]/.test(xml[i]!)) i += 1;
      if (xml.startsWith('<?', i)) {
        const j = xml.indexOf('?>', i);
        if (j < 0) malformed('unterminated processing instruction');
        i = j + 2;
      } else if (xml.startsWith('<!--', i)) {
        const j = xml.indexOf('-->', i + 4);
        if (j < 0) malformed('unterminated comment');
        i = j + 3;
      } else return i;
    }
  };
  let i = skipMisc(0);
  if (xml[i] !== '<' || xml[i + 1] === '!' || xml[i + 1] === '/') malformed('no document element');
  const rootEnd = tagEnd(xml, i);
  const startTag = xml.slice(i, rootEnd + 1);
  const name = /^<([^\s/>]+)/.exec(startTag)?.[1] ?? malformed('no element name');
  const selfClosing = xml[rootEnd - 1] === '/';
  const children: TopLevel['children'] = [];
  i = rootEnd + 1;
  let depth = selfClosing ? 0 : 1;
  let childStart = -1;
  while (depth > 0) {
    if (i >= xml.length) malformed('unclosed element');
    if (xml[i] !== '<') {
      const j = xml.indexOf('<', i);
      if (j < 0) malformed('unclosed element');
      if (depth === 1) children.push({ kind: 'text', start: i, end: j });
      i = j;
    } else if (xml.startsWith('<!--', i)) {
      const j = xml.indexOf('-->', i + 4);
      if (j < 0) malformed('unterminated comment');
      if (depth === 1) children.push({ kind: 'comment', start: i, end: j + 3 });
      i = j + 3;
    } else if (xml.startsWith('<![CDATA[', i)) {
      const j = xml.indexOf(']]>', i);
      if (j < 0) malformed('unterminated CDATA section');
      if (depth === 1) children.push({ kind: 'other', start: i, end: j + 3 });
      i = j + 3;
    } else if (xml.startsWith('<?', i)) {
      const j = xml.indexOf('?>', i);
      if (j < 0) malformed('unterminated processing instruction');
      if (depth === 1) children.push({ kind: 'other', start: i, end: j + 2 });
      i = j + 2;
    } else if (xml[i + 1] === '!') {
      malformed('unexpected declaration');
    } else if (xml[i + 1] === '/') {
      const j = xml.indexOf('>', i);
      if (j < 0) malformed('unterminated end tag');
      depth -= 1;
      if (depth === 1) children.push({ kind: 'element', start: childStart, end: j + 1 });
      i = j + 1;
    } else {
      const j = tagEnd(xml, i);
      if (depth === 1) childStart = i;
      if (xml[j - 1] === '/') {
        if (depth === 1) children.push({ kind: 'element', start: i, end: j + 1 });
      } else depth += 1;
      i = j + 1;
    }
  }
  if (skipMisc(i) !== xml.length) malformed('content after the document element');
  return { startTag, name, selfClosing, children };
}

const DEFAULT_NS_FOR_PREFIX = { ds: NS.dsig };

/**
 * XML-DSig core validation (xmldsig-core §3.2) of the document element's
 * enveloped signature, fed one top-level child at a time: the digest is
 * computed over the exclusive canonical form (xml-crypto's
 * ExclusiveCanonicalization) of the start tag, each child but the
 * Signature, and the end tag: exactly what canonicalizing the whole
 * document element after the enveloped-signature transform yields.
 *
 * Only the form SAML metadata signatures take is accepted (SAML metadata
 * §3.1, SAML core §5.4): one Signature, first child of the document
 * element; one Reference, to the document element itself (URI "" or
 * "#<its ID>", that ID unique in the document); transforms exactly
 * enveloped-signature then exclusive c14n; SignedInfo in exclusive c14n.
 * Anything else could leave part of the document unsigned. Only the
 * configured certificate's key is used; any KeyInfo is ignored.
 *
 * (xml-crypto's SignedXml.checkSignature verifies the same, but re-parses
 * the text into a second tree, clones it and resolves the reference by
 * XPath over the whole document: for 5,000 entities five times the time,
 * and more memory than the whole load may take.)
 *
 * renderNs and processInner are ExclusiveCanonicalization's own steps, marked
 * private in xml-crypto: xml-crypto is pinned exactly for them
 * (test/architecture/runtime-dependencies.test.ts), and the test that compares
 * every verdict with SignedXml.checkSignature fails if they change.
 */
class StreamingVerifier {
  readonly #c14n = new ExclusiveCanonicalization();
  readonly #scope: Array<{ prefix: string; namespaceURI: string }> = [];
  readonly #defaultNs: string;
  readonly #rootName: string;
  readonly #id: string | undefined;
  readonly #signedInfo: Element;
  readonly #signatureValue: string;
  readonly #digestValue: string;
  readonly #signatureHash: string;
  readonly #prefixes: string[];
  readonly #signedInfoPrefixes: string[];
  readonly #hash: Hash;
  #ids = 0;

  /** `signature`: the document element's first child, parsed in the document element's namespace context. */
  constructor(root: Element, signature: Element, allowSha1: boolean) {
    const invalid = (why: string): never => {
      throw new MetadataError('signature_invalid', `the metadata signature is not acceptable: ${why}`);
    };
    this.#rootName = root.tagName;
    const signedInfos = children(signature, NS.dsig, 'SignedInfo');
    if (signedInfos.length !== 1) invalid('expected one SignedInfo');
    this.#signedInfo = signedInfos[0]!;
    const c14nMethod = child(this.#signedInfo, NS.dsig, 'CanonicalizationMethod');
    if (!c14nMethod || c14nMethod.getAttribute('Algorithm') !== EXC_C14N) invalid('SignedInfo must use exclusive c14n');
    this.#signedInfoPrefixes = inclusivePrefixes(c14nMethod!);
    const signatureMethod = child(this.#signedInfo, NS.dsig, 'SignatureMethod')?.getAttribute('Algorithm') ?? '';
    const references = children(this.#signedInfo, NS.dsig, 'Reference');
    if (references.length !== 1) invalid('expected exactly one reference');
    const reference = references[0]!;
    const digestMethod = child(reference, NS.dsig, 'DigestMethod')?.getAttribute('Algorithm') ?? '';
    const signatureHash = SIGNATURE_HASHES[signatureMethod];
    const digestHash = DIGEST_HASHES[digestMethod];
    if (!signatureHash || !digestHash) invalid('unsupported signature or digest algorithm');
    if (!allowSha1 && (signatureHash === 'sha1' || digestHash === 'sha1')) throw new MetadataError('weak_algorithm', 'the metadata is signed with SHA-1');
    this.#signatureHash = signatureHash!;
    const uri = reference.getAttribute('URI') ?? '';
    const id = attribute(root, 'ID');
    if (!(uri === '' || (id !== undefined && uri === `#${id}`))) invalid('the reference does not cover the whole document');
    this.#id = uri === '' ? undefined : id;
    const transformsElement = child(reference, NS.dsig, 'Transforms');
    const transforms = transformsElement ? children(transformsElement, NS.dsig, 'Transform') : [];
    if (transforms.length !== 2 || transforms[0]!.getAttribute('Algorithm') !== ENVELOPED || transforms[1]!.getAttribute('Algorithm') !== EXC_C14N) {
      invalid('the reference must be transformed by enveloped-signature then exclusive c14n');
    }
    this.#prefixes = inclusivePrefixes(transforms[1]!);
    this.#digestValue = text(child(reference, NS.dsig, 'DigestValue')).replace(/\s+/g, '');
    this.#signatureValue = text(child(signature, NS.dsig, 'SignatureValue')).replace(/\s+/g, '');
    this.#hash = createHash(digestHash!);
    // The start tag as ExclusiveCanonicalization.process renders it (the document element has no ancestors).
    const ns = this.#c14n.renderNs(root, this.#scope, '', DEFAULT_NS_FOR_PREFIX, this.#prefixes);
    this.#defaultNs = ns.newDefaultNs;
    this.#hash.update(`<${root.tagName}${ns.rendered}${this.#c14n.renderAttrs(root)}>`);
    if (this.#id !== undefined) this.#ids += countIds(root, this.#id);
  }

  /** A child element of the document element (not the Signature), parsed in context. */
  element(element: Element): void {
    this.#hash.update(this.#c14n.processInner(element, this.#scope.slice(), this.#defaultNs, DEFAULT_NS_FOR_PREFIX, this.#prefixes));
    if (this.#id !== undefined) this.#ids += countIds(element, this.#id);
  }

  /** White space between the document element's children: its canonical form is itself (line ends already normalized). */
  text(value: string): void {
    this.#hash.update(value);
  }

  /**
   * Completes the digest, then verifies SignatureValue over the canonical
   * SignedInfo with `certificatePem`.
   *
   * @throws MetadataError
   */
  finish(certificatePem: string): void {
    this.#hash.update(`</${this.#rootName}>`);
    if (this.#id !== undefined && this.#ids !== 1) {
      throw new MetadataError('signature_invalid', 'the metadata signature is not acceptable: the referenced ID is not unique');
    }
    const digest = this.#hash.digest();
    const expected = Buffer.from(this.#digestValue, 'base64');
    if (digest.length !== expected.length || !timingSafeEqual(digest, expected)) {
      throw new MetadataError('signature_invalid', 'the metadata does not match its signature (digest)');
    }
    const canonical = new ExclusiveCanonicalization().process(this.#signedInfo, {
      defaultNsForPrefix: DEFAULT_NS_FOR_PREFIX,
      ancestorNamespaces: ancestorNamespaces(this.#signedInfo),
      inclusiveNamespacesPrefixList: this.#signedInfoPrefixes,
    });
    let valid = false;
    try {
      valid = verify(this.#signatureHash, Buffer.from(canonical), certificatePem, Buffer.from(this.#signatureValue, 'base64'));
    } catch {
      valid = false;
    }
    if (!valid) throw new MetadataError('signature_invalid', 'the metadata signature does not verify with the configured certificate');
  }
}

/** Lower-case, accents removed: what search compares. */
export function normalizeForSearch(value: string): string {
  return value.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase();
}

function byLanguage(elements: Element[]): Array<{ lang: string; value: string }> {
  return elements
    .map((e) => ({ lang: (e.getAttributeNS(NS.xml, 'lang') || e.getAttribute('xml:lang') || '').toLowerCase(), value: text(e) }))
    .filter((e) => e.value !== '');
}

function preferred(names: Array<{ lang: string; value: string }>): string | undefined {
  return (names.find((n) => n.lang === 'en') ?? names.find((n) => n.lang.startsWith('en')) ?? names[0])?.value;
}

/** The registrationAuthority of an mdrpi:RegistrationInfo in `extensions` (MDRPI §2.1), if any. */
function registrationAuthorityIn(extensions: Element | undefined): string | undefined {
  const info = extensions ? child(extensions, NS.mdrpi, 'RegistrationInfo') : undefined;
  const authority = info ? attribute(info, 'registrationAuthority')?.trim() : undefined;
  return authority && authority.length <= 1024 ? authority : undefined;
}

function readIdp(entity: Element, entityID: string, validUntil: number | undefined, inheritedAuthority: string | undefined): IdpRecord | undefined {
  const descriptor = children(entity, NS.metadata, 'IDPSSODescriptor')
    .find((d) => (d.getAttribute('protocolSupportEnumeration') ?? '').split(/\s+/).includes(NS.protocol));
  if (!descriptor) return undefined;
  const sso = children(descriptor, NS.metadata, 'SingleSignOnService').find((s) => s.getAttribute('Binding') === HTTP_REDIRECT);
  const ssoUrl = sso?.getAttribute('Location') ?? '';
  const parsed = URL.parse(ssoUrl);
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) return undefined;

  const signingCertificates: string[] = [];
  for (const key of children(descriptor, NS.metadata, 'KeyDescriptor')) {
    const use = key.getAttribute('use');
    if (use && use !== 'signing') continue;
    const keyInfo = child(key, NS.dsig, 'KeyInfo');
    for (const data of keyInfo ? children(keyInfo, NS.dsig, 'X509Data') : []) {
      for (const cert of children(data, NS.dsig, 'X509Certificate')) {
        const pem = certificateToPem(text(cert));
        if (text(cert) && !signingCertificates.includes(pem)) signingCertificates.push(pem);
      }
    }
  }
  // Without a key no response from it could ever be verified.
  if (signingCertificates.length === 0) return undefined;

  const scopes: IdpRecord['scopes'] = [];
  const displayNames: Array<{ lang: string; value: string }> = [];
  let logo: string | undefined;
  let logoArea = Infinity;
  const readExtensions = (extensions: Element | undefined) => {
    if (!extensions) return;
    for (const scope of children(extensions, NS.shibmd, 'Scope')) {
      const value = text(scope);
      if (value) scopes.push({ value, regexp: scope.getAttribute('regexp') === 'true' || scope.getAttribute('regexp') === '1' });
    }
    const ui = child(extensions, NS.mdui, 'UIInfo');
    if (!ui) return;
    displayNames.push(...byLanguage(children(ui, NS.mdui, 'DisplayName')));
    for (const l of children(ui, NS.mdui, 'Logo')) {
      const url = text(l);
      if (!/^(https:|data:image\/)/i.test(url) || url.length > 16_384) continue;
      const area = Number(l.getAttribute('width') ?? 0) * Number(l.getAttribute('height') ?? 0) || 1e9;
      if (area < logoArea) {
        logo = url;
        logoArea = area;
      }
    }
  };
  readExtensions(child(descriptor, NS.metadata, 'Extensions'));
  const entityExtensions = child(entity, NS.metadata, 'Extensions');
  for (const scope of entityExtensions ? children(entityExtensions, NS.shibmd, 'Scope') : []) {
    const value = text(scope);
    if (value) scopes.push({ value, regexp: scope.getAttribute('regexp') === 'true' || scope.getAttribute('regexp') === '1' });
  }
  let hidden = false;
  const entityAttributes = entityExtensions ? child(entityExtensions, NS.mdattr, 'EntityAttributes') : undefined;
  for (const attr of entityAttributes ? children(entityAttributes, NS.assertion, 'Attribute') : []) {
    if (attr.getAttribute('Name') !== ENTITY_CATEGORY) continue;
    if (children(attr, NS.assertion, 'AttributeValue').some((v) => text(v) === HIDE_FROM_DISCOVERY)) hidden = true;
  }
  const organization = child(entity, NS.metadata, 'Organization');
  const orgNames = organization ? byLanguage(children(organization, NS.metadata, 'OrganizationDisplayName')) : [];
  const displayName = preferred(displayNames) ?? preferred(orgNames) ?? entityID;
  const searchText = normalizeForSearch([...displayNames.map((n) => n.value), ...orgNames.map((n) => n.value), entityID].join('\n'));
  // Only copies are kept (see detach): the entity's tree and its parse buffers are garbage after this.
  return {
    entityID: detach(entityID),
    displayName: detach(displayName),
    logo: logo === undefined ? undefined : detach(logo),
    ssoUrl: detach(ssoUrl),
    signingCertificates,
    registrationAuthority: (() => {
      const authority = registrationAuthorityIn(entityExtensions) ?? inheritedAuthority;
      return authority === undefined ? undefined : detach(authority);
    })(),
    scopes: scopes.map((s) => ({ value: detach(s.value), regexp: s.regexp })),
    hidden,
    validUntil,
    searchText: detach(searchText),
    searchName: detach(normalizeForSearch(displayName)),
  };
}
/**
 * Parses a metadata document, verifying its signature when
 * `options.signingCertificate` is given: nothing in it is returned unless
 * the signature over all of it holds. An aggregate is read one top-level
 * child at a time (see StreamingVerifier). A document whose validUntil has
 * passed is refused (SAML metadata §2.2.1 / §2.3.1); entities inside it
 * whose own validUntil has passed are left out.
 *
 * @throws MetadataError
 */
export function parseMetadata(input: string, options: ParseMetadataOptions = {}): ParsedMetadata {
  const now = options.now ?? Date.now();
  // XML 1.0 §2.11: line ends are normalized before anything else (canonicalization included).
  const xml = input.includes('\r') ? input.replace(/\r\n?/g, '\n') : input;
  if (/<!DOCTYPE/i.test(xml)) throw new MetadataError('malformed', 'a DOCTYPE is not allowed');
  const top = scanTopLevel(xml);
  const endTag = `</${top.name}>`;
  const parse = (text: string): Element => {
    try {
      return parseXml(text).documentElement;
    } catch (err) {
      throw new MetadataError('malformed', err instanceof XmlError ? err.message : 'not well-formed XML');
    }
  };
  /** A child of the document element, parsed inside a copy of its start tag (for the namespaces declared there). */
  const inContext = (fragment: string): Element => {
    const wrapper = parse(`${top.startTag}${fragment}${endTag}`);
    let found: Element | undefined;
    for (let node = wrapper.firstChild; node; node = node.nextSibling) {
      if (node.nodeType !== 1) continue;
      if (found) throw new MetadataError('malformed', 'not well-formed XML');
      found = node as Element;
    }
    if (!found) throw new MetadataError('malformed', 'not well-formed XML');
    return found;
  };
  const root = parse(top.selfClosing ? top.startTag : `${top.startTag}${endTag}`);
  const isAggregate = root.namespaceURI === NS.metadata && root.localName === 'EntitiesDescriptor';
  const isEntity = root.namespaceURI === NS.metadata && root.localName === 'EntityDescriptor';
  if (!isAggregate && !isEntity) throw new MetadataError('malformed', 'not SAML metadata (no EntitiesDescriptor or EntityDescriptor)');

  const idps: IdpRecord[] = [];
  let entities = 0;
  const visit = (element: Element, inheritedValidUntil: number | undefined, inheritedAuthority: string | undefined) => {
    if (element.namespaceURI !== NS.metadata) return;
    const own = parseInstant(attribute(element, 'validUntil'));
    const effective = own === undefined ? inheritedValidUntil : Math.min(own, inheritedValidUntil ?? Infinity);
    if (element.localName === 'EntitiesDescriptor') {
      const authority = registrationAuthorityIn(child(element, NS.metadata, 'Extensions')) ?? inheritedAuthority;
      for (const nested of children(element, NS.metadata, 'EntitiesDescriptor')) visit(nested, effective, authority);
      for (const entity of children(element, NS.metadata, 'EntityDescriptor')) visit(entity, effective, authority);
      return;
    }
    if (element.localName !== 'EntityDescriptor') return;
    entities += 1;
    if (effective !== undefined && effective <= now) return;
    const entityID = element.getAttribute('entityID') ?? '';
    if (!entityID || entityID.length > 1024) return;
    const idp = readIdp(element, entityID, effective, inheritedAuthority);
    if (idp) idps.push(idp);
  };

  const rootValidUntilText = attribute(root, 'validUntil');
  const validUntil = parseInstant(rootValidUntilText);
  let verifier: StreamingVerifier | undefined;
  let firstElement = true;
  let rootAuthority: string | undefined;
  for (const part of top.children) {
    if (part.kind === 'comment') continue; // neither canonical form nor data
    if (part.kind === 'other') throw new MetadataError('malformed', 'unexpected content in the document element');
    const raw = xml.slice(part.start, part.end);
    if (part.kind === 'text') {
      if (!/^[ \t\n]*$/.test(raw)) throw new MetadataError('malformed', 'unexpected text in the document element');
      verifier?.text(raw);
      continue;
    }
    const element = inContext(raw);
    if (element.namespaceURI === NS.dsig && element.localName === 'Signature') {
      // The metadata schema puts the Signature first; a second one, or one elsewhere, is refused.
      if (!firstElement) throw new MetadataError('signature_invalid', 'the metadata signature is not acceptable: more than one, or not the first child');
      if (options.signingCertificate !== undefined) verifier = new StreamingVerifier(root, element, options.allowSha1 ?? false);
      firstElement = false;
      continue;
    }
    if (firstElement && options.signingCertificate !== undefined) throw new MetadataError('unsigned', 'the metadata is not signed');
    firstElement = false;
    verifier?.element(element);
    // The aggregate's own Extensions come before its entities (SAML metadata §2.3.1): their RegistrationInfo applies to all.
    if (isAggregate && element.namespaceURI === NS.metadata && element.localName === 'Extensions') rootAuthority = registrationAuthorityIn(element);
    if (isAggregate) visit(element, validUntil, rootAuthority);
  }
  if (options.signingCertificate !== undefined) {
    if (!verifier) throw new MetadataError('unsigned', 'the metadata is not signed');
    verifier.finish(options.signingCertificate);
  }
  // Only now that the document is verified does anything in it count, validUntil included.
  if (rootValidUntilText !== undefined && validUntil === undefined) throw new MetadataError('malformed', 'validUntil is not a valid xs:dateTime');
  if (validUntil !== undefined && validUntil <= now) throw new MetadataError('expired', 'the metadata has expired (validUntil has passed)');
  // A single entity is small: its data is read from one tree of the whole (verified) document.
  if (isEntity) visit(parse(xml), validUntil, undefined);
  if (entities === 0) throw new MetadataError('no_entities', 'the metadata describes no entity');
  return { idps, validUntil, cacheDurationSeconds: parseDuration(attribute(root, 'cacheDuration')), entities, verified: options.signingCertificate !== undefined };
}
