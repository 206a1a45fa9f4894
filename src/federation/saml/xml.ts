/**
 * Strict XML reading for SAML messages and metadata: one parser
 * configuration, namespace-aware child lookups, and the structural checks
 * every document passes before anything in it is looked at.
 */
import { DOMParser } from '@xmldom/xmldom';
import { FedgateError } from '../../util/errors.ts';

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
  /** SAML V2.0 Metadata Extensions for Registration and Publication Information. */
  mdrpi: 'urn:oasis:names:tc:SAML:metadata:rpi',
  /** SAML V2.0 Metadata Extension for Entity Attributes. */
  mdattr: 'urn:oasis:names:tc:SAML:metadata:attribute',
  xml: 'http://www.w3.org/XML/1998/namespace',
} as const;

/** Why a document was not accepted as XML. */
export class XmlError extends FedgateError {
  readonly code: 'malformed' | 'doctype' | 'xml_comment' | 'too_large' | 'too_complex';
  constructor(code: XmlError['code'], message: string) {
    super(code, message);
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
 * XML 1.0 §2.8 XMLDecl: `<?xml version="1.x" [encoding="..."] [standalone="yes|no"]?>`,
 * only at the very start of a document.
 */
const XML_DECLARATION = /^<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.[0-9]+\1(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])([A-Za-z][A-Za-z0-9._-]*)\2)?(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(?:yes|no)\4)?[ \t\r\n]*\?>/;

/**
 * Takes the XML declaration off the start of `text`, the one processing
 * instruction-like construct a SAML message may carry: stock identity
 * providers (Shibboleth IdP, pysaml2, SimpleSAMLphp) begin their responses
 * with one. Only UTF-8 is accepted (the binding's base64 is decoded as
 * UTF-8). Anything else that starts like a declaration is refused; a
 * declaration anywhere else is a processing instruction, refused by
 * {@link refuseCommentsAndInstructions}.
 *
 * @throws XmlError
 */
export function stripXmlDeclaration(text: string): string {
  if (!text.startsWith('<?xml')) return text;
  const match = XML_DECLARATION.exec(text);
  if (!match) throw new XmlError('malformed', 'not a well-formed XML declaration');
  if (match[3] !== undefined && !/^utf-?8$/i.test(match[3])) throw new XmlError('malformed', 'only UTF-8 documents are accepted');
  return text.slice(match[0].length);
}

/** Bounds on the shape of an untrusted document, checked by {@link checkXmlLimits}. */
export interface XmlLimits {
  /** UTF-8 bytes. */
  maxBytes: number;
  /** Elements in the whole document. */
  maxElements: number;
  /** Nesting depth (the document element is depth 1). */
  maxDepth: number;
  /** Element children of any one element (the sibling flood). */
  maxChildren: number;
  /**
   * The sum over elements of the square of their element-child count. XPath
   * (the `xpath` package under node-saml and xml-crypto) orders node sets by
   * scanning siblings, so `//` over a document costs about this many steps
   * per level of its node-set tree: a few thousand elements under a handful
   * of wide parents are as slow as a single flood.
   */
  maxSiblingWork: number;
  /** Attributes (namespace declarations included) on any one element. */
  maxAttributes: number;
}

/**
 * Checks `text` against `limits` in one pass over the raw characters,
 * before any parser, XPath or signature code sees it. xml-crypto's and
 * node-saml's XPath lookups are quadratic in the number of siblings
 * (16,000 empty elements, 85 KB, held the event loop for 7 s), so the shape
 * is bounded first. Hand-written because no maintained streaming XML
 * library bounds width and depth without building the tree first; it only
 * counts: anything it cannot read is left to the parser to refuse.
 *
 * @throws XmlError `too_large` (bytes) or `too_complex` (elements, depth, width, attributes)
 */
export function checkXmlLimits(text: string, limits: XmlLimits): void {
  if (Buffer.byteLength(text, 'utf8') > limits.maxBytes) throw new XmlError('too_large', 'the document is too large');
  const tooComplex = (what: string) => new XmlError('too_complex', `the document has too many ${what}`);
  const childCounts: number[] = [0];
  let elements = 0;
  let siblingWork = 0;
  let i = text.indexOf('<');
  while (i !== -1 && i < text.length - 1) {
    const next = text.charCodeAt(i + 1);
    let end: number;
    if (next === 0x2f /* / */) {
      if (childCounts.length > 1) childCounts.pop();
      end = text.indexOf('>', i);
    } else if (next === 0x21 /* ! */) {
      if (text.startsWith('<!--', i)) end = text.indexOf('-->', i + 4) + 2;
      else if (text.startsWith('<![CDATA[', i)) end = text.indexOf(']]>', i + 9) + 2;
      else end = text.indexOf('>', i);
    } else if (next === 0x3f /* ? */) {
      end = text.indexOf('?>', i + 2) + 1;
    } else {
      elements += 1;
      if (elements > limits.maxElements) throw tooComplex('elements');
      const siblings = childCounts.length - 1;
      const before = childCounts[siblings]!;
      childCounts[siblings] = before + 1;
      if (before + 1 > limits.maxChildren) throw tooComplex('sibling elements');
      // (c + 1)² - c²: the sum of squared child counts, kept as it grows.
      siblingWork += 2 * before + 1;
      if (siblingWork > limits.maxSiblingWork) throw tooComplex('sibling elements');
      // The start tag: attribute values may hold `>` but never `<` (XML 1.0 §2.3 AttValue).
      let attributes = 0;
      let j = i + 1;
      end = -1;
      while (j < text.length) {
        const c = text.charCodeAt(j);
        if (c === 0x22 || c === 0x27) {
          const close = text.indexOf(c === 0x22 ? '"' : "'", j + 1);
          if (close === -1) break;
          j = close + 1;
          continue;
        }
        if (c === 0x3d /* = */ && ++attributes > limits.maxAttributes) throw tooComplex('attributes on one element');
        if (c === 0x3e /* > */) {
          end = j;
          break;
        }
        if (c === 0x3c /* < */) break;
        j += 1;
      }
      if (end === -1) return; // not well-formed: the parser refuses it
      if (text.charCodeAt(end - 1) !== 0x2f /* / */) {
        childCounts.push(0);
        if (childCounts.length - 1 > limits.maxDepth) throw tooComplex('levels of nesting');
      }
    }
    if (end < i) return; // unterminated: the parser refuses it
    i = text.indexOf('<', end + 1);
  }
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
