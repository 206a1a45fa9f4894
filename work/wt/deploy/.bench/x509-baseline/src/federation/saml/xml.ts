/**
 * Strict XML reading for SAML messages and metadata: one parser
 * configuration, namespace-aware child lookups, and the structural checks
 * every document passes before anything in it is looked at.
 */
import { DOMParser } from '@xmldom/xmldom';

/** Namespaces (SAML core §1.2, SAML metadata §1.2, XML-DSig, metadata extensions). */
export const NS = {
  protocol: 'urn:oasis:names:tc:SAML:2.0:protocol',
  assertion: 'urn:oasis:names:tc:SAML:2.0:assertion',
  metadata: 'urn:oasis:names:tc:SAML:2.0:metadata',
  dsig: 'http://www.w3.org/2000/09/xmldsig#',
  /** SAML V2.0 Metadata Extensions for Login and Discovery User Interface. */
  mdui: 'urn:oasis:names:tc:SAML:metadata:ui',
  /** Shibboleth metadata extensions (shibmd:Scope). */
  shibmd: 'urn:mace:shibboleth:metadata:1.0',
  /** SAML V2.0 Metadata Extension for Entity Attributes. */
  mdattr: 'urn:oasis:names:tc:SAML:metadata:attribute',
  xml: 'http://www.w3.org/XML/1998/namespace',
} as const;

/** Why a document was not accepted as XML. */
export class XmlError extends Error {
  readonly code: 'malformed' | 'doctype' | 'xml_comment';
  constructor(code: XmlError['code'], message: string) {
    super(message);
    this.name = 'XmlError';
    this.code = code;
  }
}

const ELEMENT = 1;
const PROCESSING_INSTRUCTION = 7;
const COMMENT = 8;
const DOCUMENT_TYPE = 10;

/**
 * Parses `text` as XML, refusing what SAML never needs: any parse error or
 * warning-level recovery, and a DOCTYPE (entity declarations are the
 * XXE / billion-laughs vector; SAML core §6.4 / saml-sec-consider §6.3.1).
 *
 * @throws XmlError
 */
export function parseXml(text: string): Document {
  // A cheap test first: xmldom keeps DocumentType nodes, but a DOCTYPE is refused whatever it holds.
  if (/<!DOCTYPE/i.test(text)) throw new XmlError('doctype', 'a DOCTYPE is not allowed');
  let problem: string | undefined;
  const fail = (message: string) => {
    problem ??= message;
    throw new XmlError('malformed', 'not well-formed XML');
  };
  let doc: Document;
  try {
    doc = new DOMParser({ locator: {}, errorHandler: { warning: () => {}, error: fail, fatalError: fail } }).parseFromString(text, 'text/xml');
  } catch (err) {
    if (err instanceof XmlError) throw err;
    throw new XmlError('malformed', 'not well-formed XML');
  }
  if (problem !== undefined || !doc?.documentElement) throw new XmlError('malformed', 'not well-formed XML');
  for (let node = doc.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === DOCUMENT_TYPE) throw new XmlError('doctype', 'a DOCTYPE is not allowed');
  }
  return doc;
}

/**
 * Refuses comments and processing instructions inside `root`. Canonical XML
 * without comments (the form signatures are computed over) drops them, so a
 * comment can split a signed value without breaking the signature — the
 * `user@evil.example<!---->.trusted.example` NameID trick (CVE-2017-11427
 * family). No identity provider puts comments in a protocol message.
 *
 * @throws XmlError
 */
export function refuseCommentsAndInstructions(root: Node): void {
  const stack: Node[] = [root];
  while (stack.length) {
    const node = stack.pop()!;
    for (let child = node.firstChild; child; child = child.nextSibling) {
      if (child.nodeType === COMMENT) throw new XmlError('xml_comment', 'comments are not allowed in SAML messages');
      if (child.nodeType === PROCESSING_INSTRUCTION) throw new XmlError('xml_comment', 'processing instructions are not allowed in SAML messages');
      if (child.nodeType === ELEMENT) stack.push(child);
    }
  }
}

/** Element children of `parent` named `local` in namespace `ns`. */
export function children(parent: Node, ns: string, local: string): Element[] {
  const out: Element[] = [];
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === ELEMENT && (node as Element).localName === local && (node as Element).namespaceURI === ns) out.push(node as Element);
  }
  return out;
}

/** The first element child of `parent` named `local` in namespace `ns`. */
export function child(parent: Node, ns: string, local: string): Element | undefined {
  for (let node = parent.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === ELEMENT && (node as Element).localName === local && (node as Element).namespaceURI === ns) return node as Element;
  }
  return undefined;
}

/** Every element named `local` in namespace `ns` at any depth under `root` (root included). */
export function descendants(root: Node, ns: string, local: string): Element[] {
  const out: Element[] = [];
  const stack: Node[] = [root];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.nodeType === ELEMENT && (node as Element).localName === local && (node as Element).namespaceURI === ns) out.push(node as Element);
    for (let c = node.lastChild; c; c = c.previousSibling) if (c.nodeType === ELEMENT) stack.push(c);
  }
  return out;
}

/**
 * The text of an element: all its text descendants joined (comments are not
 * text, matching what canonicalization signs), trimmed.
 */
export function text(element: Element | undefined): string {
  return element?.textContent?.trim() ?? '';
}

/** An attribute's value, or undefined when absent (xmldom returns '' for absent ones). */
export function attribute(element: Element, name: string): string | undefined {
  return element.hasAttribute(name) ? element.getAttribute(name) ?? undefined : undefined;
}

/**
 * A copy of `value` that shares no memory with the document it was read
 * from. V8 keeps a substring's parent string alive, and xmldom's values are
 * substrings of its parse buffers: kept as they are, the few values taken
 * from each of 5,000 entities held on to ~75 MB of parser state.
 */
export function detach(value: string): string {
  return Buffer.from(value, 'utf8').toString('utf8');
}

/** A certificate body (base64 of DER, whitespace removed) as PEM. */
export function certificateToPem(base64: string): string {
  const body = base64.replace(/\s+/g, '');
  return `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END CERTIFICATE-----\n`;
}

/** xs:dateTime to epoch milliseconds; undefined when absent or malformed. */
export function parseInstant(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  // xs:dateTime; SAML core §1.3.3 wants UTC, but an explicit offset is still a valid instant.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$/.test(value)) return undefined;
  const ms = Date.parse(/Z|[+-]\d{2}:\d{2}$/.test(value) ? value : `${value}Z`);
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * xs:duration (`P1DT6H`, `PT30M`...) to seconds; months count 30 days and
 * years 365 (cacheDuration is a hint, SAML metadata §1.3). Undefined when
 * absent, malformed or negative.
 */
export function parseDuration(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const m = /^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(value.trim());
  if (!m || value.trim() === 'P' || value.trim().endsWith('T')) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  const n = (v: string | undefined) => (v ? Number(v) : 0);
  return n(y) * 365 * 86400 + n(mo) * 30 * 86400 + n(d) * 86400 + n(h) * 3600 + n(mi) * 60 + n(s);
}
