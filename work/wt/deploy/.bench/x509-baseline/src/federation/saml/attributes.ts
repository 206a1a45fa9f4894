/**
 * From a verified assertion to what fedgate keeps of a person: the subject
 * identifier an identity is linked by, a name, an email address, and groups
 * mapped from eduPersonEntitlement values. Which attributes are read is
 * configuration (config `saml.attributes`, `saml.entitlementRules`).
 */
import type { EntitlementRule, SamlConfig } from '../../config/saml-schema.ts';
import type { IdpRecord } from './metadata.ts';
import { attribute, child, children, NS, text } from './xml.ts';

/** A NameID (SAML core §2.2.3), as a subject or as an attribute value (eduPersonTargetedID). */
export interface NameId {
  value: string;
  format?: string | undefined;
  nameQualifier?: string | undefined;
  spNameQualifier?: string | undefined;
}

/** One attribute value: its text, or the NameID it holds. */
export interface AttributeValue {
  text: string;
  nameId?: NameId | undefined;
}

/** What an assertion says about its subject. */
export interface AssertionStatements {
  nameId?: NameId | undefined;
  /** Attribute values by attribute Name. */
  attributes: Map<string, AttributeValue[]>;
}

/** The identity an assertion maps to. */
export interface MappedIdentity {
  subject: string;
  /** The attribute Name (or `NameID`) the subject came from. */
  subjectSource: string;
  name?: string | undefined;
  email?: string | undefined;
  /** eduPersonPrincipalName, when released: a readable username candidate. */
  principalName?: string | undefined;
  /** Group paths the entitlement rules produced (not yet checked against the registry). */
  groups: string[];
}

const MAX_VALUES = 1000;
const MAX_VALUE_LENGTH = 2048;
const CONTROL = /[\u0000-\u001f\u007f]/;

function readNameId(element: Element): NameId {
  return {
    value: text(element),
    format: attribute(element, 'Format'),
    nameQualifier: attribute(element, 'NameQualifier'),
    spNameQualifier: attribute(element, 'SPNameQualifier'),
  };
}

/** Reads the Subject NameID and every attribute of `assertion` (a verified saml:Assertion element). */
export function readStatements(assertion: Element): AssertionStatements {
  const subject = child(assertion, NS.assertion, 'Subject');
  const nameIdElement = subject ? child(subject, NS.assertion, 'NameID') : undefined;
  const attributes = new Map<string, AttributeValue[]>();
  let count = 0;
  for (const statement of children(assertion, NS.assertion, 'AttributeStatement')) {
    for (const attr of children(statement, NS.assertion, 'Attribute')) {
      const name = attr.getAttribute('Name') ?? '';
      if (!name) continue;
      const values = attributes.get(name) ?? [];
      for (const v of children(attr, NS.assertion, 'AttributeValue')) {
        if (++count > MAX_VALUES) break;
        const nested = child(v, NS.assertion, 'NameID');
        const value: AttributeValue = nested ? { text: text(nested), nameId: readNameId(nested) } : { text: text(v) };
        if (value.text.length <= MAX_VALUE_LENGTH) values.push(value);
      }
      attributes.set(name, values);
    }
  }
  return { nameId: nameIdElement ? readNameId(nameIdElement) : undefined, attributes };
}

/** Whether `scope` is one the identity provider may assert (shibmd:Scope); any scope when it declares none. */
export function scopeAllowed(idp: Pick<IdpRecord, 'scopes'>, scope: string): boolean {
  if (idp.scopes.length === 0) return true;
  const lower = scope.toLowerCase();
  return idp.scopes.some((s) => {
    if (!s.regexp) return s.value.toLowerCase() === lower;
    try {
      return new RegExp(`^(?:${s.value})$`, 'i').test(scope);
    } catch {
      return false;
    }
  });
}

/** SAML V2.0 Subject Identifier Attributes Profile §3.3.1 / §3.4.1: `uniqueID@scope`. */
const SUBJECT_ID_SYNTAX = /^[0-9A-Za-z][-=0-9A-Za-z]{0,126}@[0-9A-Za-z][-.0-9A-Za-z]{0,126}$/;
/** eduPersonPrincipalName / eduPersonUniqueId: `user@scope` (eduPerson 2021-11). */
const SCOPED_SYNTAX = /^[^@\s]{1,256}@[0-9A-Za-z][-.0-9A-Za-z]{0,253}$/;
const SCOPED_SUBJECTS: Record<string, RegExp> = {
  'urn:oasis:names:tc:SAML:attribute:subject-id': SUBJECT_ID_SYNTAX,
  'urn:oasis:names:tc:SAML:attribute:pairwise-id': SUBJECT_ID_SYNTAX,
  'urn:oid:1.3.6.1.4.1.5923.1.1.1.13': SCOPED_SYNTAX,
  'urn:oid:1.3.6.1.4.1.5923.1.1.1.6': SCOPED_SYNTAX,
};
const TARGETED_ID = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.10';
const PRINCIPAL_NAME = 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6';

/** Why an assertion could not be mapped. */
export type MappingProblem = 'no_subject';

/**
 * Maps statements to an identity per configuration. Compiled once per
 * bridge: the entitlement rules' regular expressions are built here.
 */
export class AttributeMapper {
  readonly #names: SamlConfig['attributes'];
  readonly #rules: Array<{ pattern: RegExp; group: string }>;

  constructor(names: SamlConfig['attributes'], rules: readonly EntitlementRule[]) {
    this.#names = names;
    this.#rules = rules.map((r) => ({ pattern: new RegExp(r.pattern, 'u'), group: r.group }));
  }

  /**
   * The identity for `statements` from `idp` as seen by the SP `spEntityId`,
   * or a problem. Scoped identifiers (subject-id, pairwise-id,
   * eduPersonUniqueId, eduPersonPrincipalName) must have a scope the
   * identity provider's metadata lists (Subject Identifier Attributes
   * Profile §3.3.2); a NameID-valued one must be qualified for this IdP/SP
   * pair when it is qualified at all (SAML core §8.3.7).
   */
  map(statements: AssertionStatements, idp: Pick<IdpRecord, 'entityID' | 'scopes'>, spEntityId: string): MappedIdentity | MappingProblem {
    const qualifiedForUs = (id: NameId) =>
      (id.nameQualifier === undefined || id.nameQualifier === idp.entityID) && (id.spNameQualifier === undefined || id.spNameQualifier === spEntityId);
    let subject: string | undefined;
    let subjectSource = '';
    for (const name of this.#names.subject) {
      const values = statements.attributes.get(name) ?? [];
      // Single-valued by definition; several values mean the IdP is confused, so none is taken.
      if (values.length !== 1) continue;
      const value = values[0]!;
      let candidate: string | undefined;
      if (value.nameId) {
        if (qualifiedForUs(value.nameId)) candidate = value.nameId.value;
      } else if (name === TARGETED_ID) {
        // The legacy string form `idp!sp!id` (eduPerson 2021-11, eduPersonTargetedID).
        const parts = value.text.split('!');
        candidate = parts.length === 3 ? (parts[0] === idp.entityID && parts[1] === spEntityId ? parts[2] : undefined) : value.text;
      } else {
        candidate = value.text;
        const syntax = SCOPED_SUBJECTS[name];
        if (syntax && (!syntax.test(candidate) || !scopeAllowed(idp, candidate.slice(candidate.lastIndexOf('@') + 1)))) candidate = undefined;
      }
      if (candidate && !CONTROL.test(candidate) && candidate.length <= 1024) {
        subject = candidate;
        subjectSource = name;
        break;
      }
    }
    const nameId = statements.nameId;
    if (subject === undefined && nameId?.value && nameId.format && this.#names.subjectNameIdFormats.includes(nameId.format)
      && qualifiedForUs(nameId) && !CONTROL.test(nameId.value) && nameId.value.length <= 1024) {
      subject = nameId.value;
      subjectSource = 'NameID';
    }
    if (subject === undefined) return 'no_subject';

    const first = (names: readonly string[]) => {
      for (const name of names) {
        const value = statements.attributes.get(name)?.find((v) => v.text !== '' && !CONTROL.test(v.text));
        if (value) return value.text;
      }
      return undefined;
    };
    const given = first(this.#names.givenName);
    const surname = first(this.#names.surname);
    const name = first(this.#names.displayName) ?? ([given, surname].filter(Boolean).join(' ') || undefined);
    const emailValue = this.#names.email.flatMap((n) => statements.attributes.get(n) ?? []).find((v) => /^[^\s@]{1,64}@[^\s@]{1,189}$/.test(v.text));
    const principal = statements.attributes.get(PRINCIPAL_NAME);
    const principalName = principal?.length === 1 && SCOPED_SYNTAX.test(principal[0]!.text)
      && scopeAllowed(idp, principal[0]!.text.slice(principal[0]!.text.lastIndexOf('@') + 1)) ? principal[0]!.text : undefined;
    const entitlements = this.#names.entitlement.flatMap((n) => statements.attributes.get(n) ?? []).map((v) => v.text);
    return {
      subject,
      subjectSource,
      name: name?.slice(0, 200),
      email: emailValue?.text,
      principalName,
      groups: this.groups(entitlements),
    };
  }

  /** The group paths the entitlement rules map `entitlements` to; see the rule schema for the template syntax. */
  groups(entitlements: readonly string[]): string[] {
    const out = new Set<string>();
    for (const value of entitlements) {
      for (const rule of this.#rules) {
        const match = rule.pattern.exec(value);
        if (!match) continue;
        const capture = (key: string) => (/^\d$/.test(key) ? match[Number(key)] : match.groups?.[key]) ?? '';
        const expanded = rule.group.replace(/\$(\d|<([A-Za-z_][A-Za-z0-9_]*)>)/g, (_all, digit: string, named: string | undefined) =>
          capture(named ?? digit).replaceAll(':', '/'));
        const path = `/${expanded.split('/').filter(Boolean).join('/')}`;
        if (GROUP_PATH.test(path)) out.add(path);
      }
    }
    return [...out].sort();
  }
}

/** src/accounts/groups.ts's group path rule. */
const GROUP_PATH = /^(\/(?!\.\.?(?:\/|$))[A-Za-z0-9._-]+)+$/;

/**
 * Usernames to try for a just-in-time account, best first: the
 * eduPersonPrincipalName, the email address, the subject, each reduced to
 * letters, digits and `._@-` (what a configured username may hold), then a
 * name derived from a hash of the identity. The caller adds a suffix when
 * one is taken.
 */
export function usernameCandidates(identity: Pick<MappedIdentity, 'principalName' | 'email' | 'subject'>, fallback: string): string[] {
  const clean = (value: string | undefined) => {
    if (!value) return undefined;
    const reduced = value.normalize('NFKD').replace(/\p{M}+/gu, '').replace(/[^A-Za-z0-9._@-]+/g, '-')
      .replace(/-{2,}/g, '-').replace(/^[._@-]+|[._@-]+$/g, '').toLowerCase().slice(0, 64);
    return reduced.length >= 2 ? reduced : undefined;
  };
  const out = [clean(identity.principalName), clean(identity.email), identity.subject.length <= 64 ? clean(identity.subject) : undefined, fallback]
    .filter((c): c is string => c !== undefined);
  return [...new Set(out)];
}
