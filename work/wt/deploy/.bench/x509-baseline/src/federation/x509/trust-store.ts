/**
 * The trust anchors: a directory in the layout IGTF distributions and
 * fetch-crl produce (also what OpenSSL's `-CApath` reads):
 *
 * - CA certificates: `<hash>.0` (`.1`, ... for hash collisions), `*.pem`,
 *   `*.crt`, `*.cer` (PEM, one or more certificates, or DER);
 * - CRLs: `<hash>.r0` (`.r1`, ...), `*.crl.pem`, `*.crl` (PEM or DER);
 * - anything else (`.info`, `.signing_policy`, `.namespaces`, `.crl_url`,
 *   hidden files) is ignored.
 *
 * Every CA certificate in the directory is a trust anchor. One that is
 * itself issued by another certificate of the directory (an intermediate
 * next to its root) is still validated up to that one, so the root's
 * validity, path length and CRL apply to it (see verify.ts).
 *
 * The directory is polled: every `reloadSeconds` the names, sizes, mtimes
 * and inodes of its relevant files are compared with the last load (fetch-crl
 * and IGTF packages replace files by renaming, which a stat sees; inotify
 * does not work across NFS). A changed directory is read again and swapped
 * in whole. A load that met unreadable files is retried once before it is
 * accepted without them, so that a file caught half-written does not drop
 * a CA's CRL (or the CA) until the next change.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../observability/logger.ts';
import {
  CertificateParseError, crlSignedBy, hasKeyUsage, KEY_USAGE, parseCertificate, parseCrl, pemBlocks, type ParsedCertificate, type ParsedCrl,
} from './certificate.ts';

const CERT_FILE = /^(?:[0-9a-f]{8}\.\d+|.+\.(?:pem|crt|cer))$/i;
const CRL_FILE = /^(?:[0-9a-f]{8}\.r\d+|.+\.crl(?:\.pem)?)$/i;
/** Larger files are not read: the biggest IGTF CRLs are a few megabytes. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

function kindOf(name: string): 'crl' | 'certificate' | undefined {
  if (name.startsWith('.')) return undefined;
  if (CRL_FILE.test(name)) return 'crl';
  if (CERT_FILE.test(name)) return 'certificate';
  return undefined;
}

/** One load of the trust anchor directory; never changes once built. */
export class TrustSnapshot {
  /** The CA certificates, without duplicates (`<hash>.0` is often a link to `<alias>.pem`). */
  readonly anchors: readonly ParsedCertificate[];
  readonly crls: readonly ParsedCrl[];
  /** Files (or parts of them) that could not be used, with the reason. */
  readonly problems: readonly string[];
  /** How many of the problems are files that could not be read or parsed (perhaps caught mid-write). */
  readonly unreadable: number;
  readonly loadedAt: Date;
  readonly #bySubject = new Map<string, ParsedCertificate[]>();
  readonly #fingerprints = new Set<string>();
  readonly #crlsByIssuer = new Map<string, ParsedCrl[]>();
  readonly #crlFor = new Map<string, ParsedCrl | null>();

  constructor(anchors: readonly ParsedCertificate[], crls: readonly ParsedCrl[], problems: readonly string[] = [], unreadable = 0, loadedAt = new Date()) {
    this.anchors = anchors;
    this.crls = crls;
    this.problems = problems;
    this.unreadable = unreadable;
    this.loadedAt = loadedAt;
    for (const anchor of anchors) {
      this.#fingerprints.add(anchor.fingerprint);
      const list = this.#bySubject.get(anchor.subjectKey) ?? [];
      list.push(anchor);
      this.#bySubject.set(anchor.subjectKey, list);
    }
    for (const crl of crls) {
      const list = this.#crlsByIssuer.get(crl.issuerKey) ?? [];
      list.push(crl);
      this.#crlsByIssuer.set(crl.issuerKey, list);
    }
  }

  /** Is this exact certificate one of the anchors? */
  isAnchor(certificate: ParsedCertificate): boolean {
    return this.#fingerprints.has(certificate.fingerprint);
  }

  /** Anchors whose subject matches `issuerKey` (a dnMatchKey). */
  anchorsNamed(issuerKey: string): readonly ParsedCertificate[] {
    return this.#bySubject.get(issuerKey) ?? [];
  }

  /**
   * The newest usable CRL issued by `ca` (RFC 5280 §6.3.3): same issuer
   * name, signed by the CA's key, the CA allowed to sign CRLs (cRLSign when
   * it has keyUsage), and no critical extension fedgate does not process.
   * The CA may be an anchor or an intermediate the client sent.
   */
  crlFor(ca: ParsedCertificate): ParsedCrl | undefined {
    const cached = this.#crlFor.get(ca.fingerprint);
    if (cached !== undefined) return cached ?? undefined;
    let best: ParsedCrl | undefined;
    if (!ca.keyUsage || hasKeyUsage(ca.keyUsage, KEY_USAGE.cRLSign)) {
      for (const crl of this.#crlsByIssuer.get(ca.subjectKey) ?? []) {
        if (crl.unsupportedCritical.length || !crlSignedBy(crl, ca.x509.publicKey)) continue;
        if (!best || crl.thisUpdate > best.thisUpdate) best = crl;
      }
    }
    // The cache is per snapshot, bounded by the CAs clients can name, and they must chain to an anchor to get here.
    if (this.#crlFor.size < 10_000) this.#crlFor.set(ca.fingerprint, best ?? null);
    return best;
  }
}

/** Reads a trust anchor directory once. */
export async function loadTrustDirectory(dir: string): Promise<TrustSnapshot> {
  const entries = await readdir(dir);
  const anchors = new Map<string, ParsedCertificate>();
  const crls = new Map<string, ParsedCrl>();
  const problems: string[] = [];
  let unreadable = 0;
  for (const name of entries.sort()) {
    const kind = kindOf(name);
    if (!kind) continue;
    const path = join(dir, name);
    try {
      const info = await stat(path);
      if (!info.isFile()) continue;
      if (info.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      const bytes = await readFile(path);
      const text = bytes.toString('latin1');
      const found: Array<{ label: 'certificate' | 'crl'; der: Buffer }> = [];
      if (text.includes('-----BEGIN')) {
        for (const block of pemBlocks(text)) {
          if (block.label === 'CERTIFICATE' || block.label === 'X509 CERTIFICATE') found.push({ label: 'certificate', der: block.der });
          else if (block.label === 'X509 CRL') found.push({ label: 'crl', der: block.der });
        }
      } else if (bytes.length > 0) {
        found.push({ label: kind, der: bytes });
      }
      if (found.length === 0) throw new Error('no certificate or CRL in it');
      for (const item of found) {
        if (item.label === 'crl') {
          const crl = parseCrl(item.der);
          if (crl.unsupportedCritical.length) {
            problems.push(`${name}: CRL of ${crl.issuerDn} has critical extensions fedgate does not process (${crl.unsupportedCritical.join(', ')}); not used`);
          }
          crls.set(crl.der.toString('base64'), crl);
        } else {
          const certificate = parseCertificate(item.der);
          if (!certificate.basicConstraints?.ca) {
            problems.push(`${name}: ${certificate.subjectDn} is not a CA certificate (basicConstraints cA); not used`);
            continue;
          }
          anchors.set(certificate.fingerprint, certificate);
        }
      }
    } catch (err) {
      const reason = err instanceof CertificateParseError ? err.message : (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      problems.push(`${name}: ${reason}`);
      unreadable += 1;
    }
  }
  return new TrustSnapshot([...anchors.values()], [...crls.values()], problems, unreadable);
}

/** What changes when a relevant file is added, removed, replaced or rewritten. */
async function directorySignature(dir: string): Promise<string> {
  const entries = (await readdir(dir)).filter((name) => kindOf(name)).sort();
  const parts = await Promise.all(entries.map(async (name) => {
    try {
      const info = await stat(join(dir, name));
      return `${name}:${info.size}:${info.mtimeMs}:${info.ino}`;
    } catch {
      return `${name}:gone`;
    }
  }));
  return parts.join('\n');
}

/** Options of {@link TrustStore.open}. */
export interface TrustStoreOptions {
  dir: string;
  logger: Logger;
  /** Seconds between checks of the directory; 0 = never reload. */
  reloadSeconds: number;
}

/** The current trust anchors, reloaded when the directory changes. */
export class TrustStore {
  readonly #dir: string;
  readonly #logger: Logger;
  #snapshot: TrustSnapshot;
  #applied: string;
  #rejected: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<boolean> | undefined;
  #closed = false;
  /** Called after a new snapshot is swapped in (the listener refreshes its CA list). */
  onReload: ((snapshot: TrustSnapshot) => void) | undefined;

  private constructor(dir: string, logger: Logger, snapshot: TrustSnapshot, signature: string) {
    this.#dir = dir;
    this.#logger = logger;
    this.#snapshot = snapshot;
    this.#applied = signature;
  }

  /**
   * Loads the directory and starts polling it.
   *
   * @throws Error when the directory cannot be read at all.
   */
  static async open(options: TrustStoreOptions): Promise<TrustStore> {
    const signature = await directorySignature(options.dir).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`x509.trustAnchorsDir: cannot read ${options.dir} (${err.code ?? err.message})`);
    });
    const snapshot = await loadTrustDirectory(options.dir);
    const store = new TrustStore(options.dir, options.logger, snapshot, signature);
    store.#report(snapshot);
    if (options.reloadSeconds > 0) {
      store.#timer = setInterval(() => void store.check(), options.reloadSeconds * 1000);
      store.#timer.unref();
    }
    return store;
  }

  /** The anchors and CRLs in use now. */
  get snapshot(): TrustSnapshot {
    return this.#snapshot;
  }

  #report(snapshot: TrustSnapshot): void {
    for (const problem of snapshot.problems) this.#logger.warn({ dir: this.#dir }, `trust anchors: ${problem}`);
    this.#logger.info({ dir: this.#dir, anchors: snapshot.anchors.length, crls: snapshot.crls.length, problems: snapshot.problems.length }, 'X.509 trust anchors loaded');
  }

  /**
   * Reloads the directory if it changed since the last load; resolves to
   * whether a new snapshot was swapped in. Never throws: an unreadable
   * directory keeps the current anchors (and is logged).
   */
  check(): Promise<boolean> {
    this.#checking ??= this.#check().finally(() => { this.#checking = undefined; });
    return this.#checking;
  }

  async #check(): Promise<boolean> {
    try {
      const signature = await directorySignature(this.#dir);
      if (signature === this.#applied) return false;
      const snapshot = await loadTrustDirectory(this.#dir);
      if (this.#closed) return false;
      if (snapshot.unreadable && signature !== this.#rejected) {
        // Perhaps a file caught mid-write: keep the current anchors and look again at the next check.
        this.#rejected = signature;
        this.#logger.warn({ dir: this.#dir, problems: snapshot.problems }, 'trust anchors changed but some files could not be read; retrying at the next check');
        return false;
      }
      this.#snapshot = snapshot;
      this.#applied = signature;
      this.#rejected = undefined;
      this.#report(snapshot);
      this.onReload?.(snapshot);
      return true;
    } catch (err) {
      this.#logger.error({ dir: this.#dir, err: { message: (err as Error).message } }, 'trust anchor directory could not be read; keeping the current anchors');
      return false;
    }
  }

  /** Stops polling. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}
