/**
 * The identity providers this deployment trusts: read from the configured
 * metadata sources, each refreshed on its own schedule, merged into one
 * index (first source wins for an entityID), filtered by the allow and deny
 * lists, and searchable by name.
 *
 * A refresh that fails (unreachable, malformed, badly signed, expired) never
 * replaces what is loaded: the last good copy of that source stays in use
 * and an alert is logged (`logger.error` with a stable `alert` field). Once
 * the last good copy itself passes its validUntil it is dropped, with an
 * alert of its own: expired metadata must not be used (SAML metadata §2.2.1).
 */
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { SamlMetadataSource } from '../../config/saml-schema.ts';
import { MetadataError, normalizeForSearch, parseMetadata, type IdpRecord } from './metadata.ts';
import { FedgateError } from '../../util/errors.ts';

/** Alert values in log lines; monitoring matches on them, so they never change. */
export const ALERTS = {
  /** A metadata source could not be loaded or refreshed; the last good copy (if any) stays. */
  rejected: 'saml_metadata_rejected',
  /** The last good copy of a source expired before a refresh succeeded; its identity providers are gone. */
  stale: 'saml_metadata_stale',
} as const;

/** Largest metadata document accepted (an aggregate of ~10,000 entities is about 100 MB). */
const MAX_METADATA_BYTES = 256 * 1024 * 1024;
const FETCH_TIMEOUT_MS = 60_000;

/** Options of {@link IdpRegistry}. */
export interface IdpRegistryOptions {
  sources: readonly SamlMetadataSource[];
  /** Only these entityIDs, when given. */
  allow?: readonly string[] | undefined;
  deny?: readonly string[] | undefined;
  allowSha1?: boolean | undefined;
  logger: Logger;
  /** Epoch ms; tests move it. */
  now?: (() => number) | undefined;
}

/** The outcome of loading one source. */
export interface SourceStatus {
  name: string;
  ok: boolean;
  /** MetadataError code, or `unreachable` / `certificate_unreadable`. */
  reason?: string | undefined;
  idps: number;
}

interface SourceState {
  config: SamlMetadataSource;
  name: string;
  idps: Map<string, IdpRecord> | undefined;
  validUntil: number | undefined;
  etag: string | undefined;
  lastModified: string | undefined;
  fileStamp: string | undefined;
  /** The cacheDuration of the copy in use, seconds. */
  cacheSeconds: number | undefined;
  timer: NodeJS.Timeout | undefined;
  loading: Promise<SourceStatus> | undefined;
}

/** A metadata source that could not be loaded; `code` is what alerts carry. */
class SourceError extends FedgateError {
  readonly code: string;
  constructor(code: string, message: string) {
    super(code, message);
    this.code = code;
  }
}

const collator = new Intl.Collator('en', { sensitivity: 'base' });

/** Identity providers from metadata; see the module comment. */
export class IdpRegistry {
  readonly #sources: SourceState[];
  readonly #allow: Set<string> | undefined;
  readonly #deny: Set<string>;
  readonly #allowSha1: boolean;
  readonly #logger: Logger;
  readonly #now: () => number;
  #index = new Map<string, IdpRecord>();
  #listed: IdpRecord[] = [];
  #closed = false;
  readonly #aborts = new Set<AbortController>();

  constructor(options: IdpRegistryOptions) {
    this.#sources = options.sources.map((config) => ({
      config,
      name: config.name ?? config.url ?? config.file ?? 'metadata',
      idps: undefined,
      validUntil: undefined,
      etag: undefined,
      lastModified: undefined,
      fileStamp: undefined,
      cacheSeconds: undefined,
      timer: undefined,
      loading: undefined,
    }));
    this.#allow = options.allow ? new Set(options.allow) : undefined;
    this.#deny = new Set(options.deny ?? []);
    this.#allowSha1 = options.allowSha1 ?? false;
    this.#logger = options.logger.child({ component: 'saml-metadata' });
    this.#now = options.now ?? Date.now;
  }

  /** Loads every source once and schedules their refreshes. */
  async start(): Promise<SourceStatus[]> {
    return Promise.all(this.#sources.map((source) => this.#load(source)));
  }

  /** Loads every source again now (operators, tests); resolves with each outcome. */
  async refreshAll(): Promise<SourceStatus[]> {
    return Promise.all(this.#sources.map((source) => this.#load(source)));
  }

  /** Stops the refresh timers and aborts fetches in flight. */
  close(): void {
    this.#closed = true;
    for (const source of this.#sources) clearTimeout(source.timer);
    for (const abort of this.#aborts) abort.abort();
  }

  /** The identity provider with this entityID, if it is trusted now (listed, allowed, not expired). */
  get(entityID: string): IdpRecord | undefined {
    const idp = this.#index.get(entityID);
    if (!idp) return undefined;
    if (idp.validUntil !== undefined && idp.validUntil <= this.#now()) return undefined;
    return idp;
  }

  /** Identity providers offered in discovery, by display name. */
  providers(): IdpRecord[] {
    return this.#listed.filter(this.#current);
  }

  /** Not past its validUntil (a source's copy is dropped at its next refresh; until then its entries are filtered). */
  readonly #current = (idp: IdpRecord): boolean => idp.validUntil === undefined || idp.validUntil > this.#now();

  /** Number of trusted identity providers (including those hidden from discovery). */
  get size(): number {
    return this.#index.size;
  }

  /**
   * Identity providers whose names or entityID contain every word of `query`
   * (case and accents ignored), those whose display name starts with the
   * first word first, then by display name. An empty query matches all.
   */
  match(query: string): IdpRecord[] {
    const words = normalizeForSearch(query).split(/\s+/).filter(Boolean).slice(0, 8);
    if (words.length === 0) return this.providers();
    const first: IdpRecord[] = [];
    const rest: IdpRecord[] = [];
    for (const idp of this.#listed) {
      if (!words.every((w) => idp.searchText.includes(w)) || !this.#current(idp)) continue;
      (idp.searchName.startsWith(words[0]!) ? first : rest).push(idp);
    }
    return first.concat(rest);
  }

  /** The first `limit` of {@link match}. */
  search(query: string, limit: number): IdpRecord[] {
    return this.match(query).slice(0, Math.max(0, limit));
  }

  #allowed(entityID: string): boolean {
    return (!this.#allow || this.#allow.has(entityID)) && !this.#deny.has(entityID);
  }

  #rebuild(): void {
    const index = new Map<string, IdpRecord>();
    for (const source of this.#sources) {
      for (const [entityID, idp] of source.idps ?? []) {
        if (!index.has(entityID) && this.#allowed(entityID)) index.set(entityID, idp);
      }
    }
    this.#index = index;
    this.#listed = [...index.values()].filter((idp) => !idp.hidden).sort((a, b) => collator.compare(a.displayName, b.displayName));
  }

  #load(source: SourceState): Promise<SourceStatus> {
    // One load per source at a time: a timer firing during a manual refresh joins it.
    source.loading ??= this.#loadOnce(source).finally(() => {
      source.loading = undefined;
    });
    return source.loading;
  }

  async #loadOnce(source: SourceState): Promise<SourceStatus> {
    clearTimeout(source.timer);
    const { refreshSeconds } = source.config;
    let next = refreshSeconds.min;
    try {
      const document = await this.#read(source);
      if (document !== undefined) {
        const certificate = source.config.signingCertificate ? await this.#certificate(source.config.signingCertificate) : undefined;
        const parsed = parseMetadata(document.text, { signingCertificate: certificate, allowSha1: this.#allowSha1, now: this.#now() });
        source.idps = new Map(parsed.idps.map((idp) => [idp.entityID, idp]));
        source.validUntil = parsed.validUntil;
        source.etag = document.etag;
        source.lastModified = document.lastModified;
        source.fileStamp = document.fileStamp;
        source.cacheSeconds = parsed.cacheDurationSeconds;
        next = Math.min(Math.max(parsed.cacheDurationSeconds ?? refreshSeconds.default, refreshSeconds.min), refreshSeconds.max);
        this.#logger.info({ source: source.name, entities: parsed.entities, idps: parsed.idps.length, verified: parsed.verified, validUntil: parsed.validUntil ? new Date(parsed.validUntil).toISOString() : undefined, nextRefreshSeconds: next }, 'SAML metadata loaded');
        this.#rebuild();
      } else {
        // Unchanged since the last good copy (HTTP 304, same file): it stays, on its own schedule.
        next = Math.min(Math.max(source.cacheSeconds ?? refreshSeconds.default, refreshSeconds.min), refreshSeconds.max);
        this.#dropIfExpired(source);
      }
      if (source.validUntil !== undefined) {
        // Refresh well before the copy in use expires, however long its cacheDuration.
        const untilExpiry = Math.floor((source.validUntil - this.#now()) / 1000);
        next = Math.min(next, Math.max(refreshSeconds.min, Math.floor(untilExpiry / 2)));
      }
      return { name: source.name, ok: true, idps: source.idps?.size ?? 0 };
    } catch (err) {
      const reason = err instanceof MetadataError || err instanceof SourceError ? err.code : 'unreadable';
      const kept = this.#dropIfExpired(source) && source.idps !== undefined;
      this.#logger.error({
        alert: ALERTS.rejected,
        source: source.name,
        reason,
        problem: err instanceof MetadataError || err instanceof SourceError ? err.message : 'the metadata could not be read',
        keptLastGood: kept,
        idps: kept ? source.idps!.size : 0,
        retryInSeconds: next,
      }, kept ? 'SAML metadata refresh refused; keeping the last good copy' : 'SAML metadata could not be loaded');
      return { name: source.name, ok: false, reason, idps: kept ? source.idps!.size : 0 };
    } finally {
      if (!this.#closed) {
        source.timer = setTimeout(() => void this.#load(source), next * 1000);
        source.timer.unref();
      }
    }
  }

  /** Drops a source's copy once its validUntil has passed; true when a (still valid) copy remains. */
  #dropIfExpired(source: SourceState): boolean {
    if (source.idps && source.validUntil !== undefined && source.validUntil <= this.#now()) {
      this.#logger.error({ alert: ALERTS.stale, source: source.name, idps: source.idps.size, validUntil: new Date(source.validUntil).toISOString() }, 'SAML metadata expired before a refresh succeeded; its identity providers are no longer trusted');
      source.idps = undefined;
      source.validUntil = undefined;
      source.etag = undefined;
      source.lastModified = undefined;
      source.fileStamp = undefined;
      source.cacheSeconds = undefined;
      this.#rebuild();
      return false;
    }
    return source.idps !== undefined;
  }

  async #certificate(path: string): Promise<string> {
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
      // Parsing it once turns a wrong file into a clear reason instead of a failed signature.
      new X509Certificate(pem);
    } catch {
      throw new SourceError('certificate_unreadable', `the signing certificate ${path} cannot be read as a PEM certificate`);
    }
    return pem;
  }

  /** The document's text, or undefined when unchanged since the last good copy. */
  async #read(source: SourceState): Promise<{ text: string; etag?: string | undefined; lastModified?: string | undefined; fileStamp?: string | undefined } | undefined> {
    const { url, file } = source.config;
    if (file !== undefined) {
      try {
        const info = await stat(file);
        const stamp = `${info.ino}:${info.size}:${info.mtimeMs}`;
        if (source.idps && stamp === source.fileStamp) return undefined;
        if (info.size > MAX_METADATA_BYTES) throw new SourceError('too_large', `the file is larger than ${MAX_METADATA_BYTES} bytes`);
        return { text: await readFile(file, 'utf8'), fileStamp: stamp };
      } catch (err) {
        if (err instanceof SourceError) throw err;
        throw new SourceError('unreachable', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const abort = new AbortController();
    this.#aborts.add(abort);
    const timer = setTimeout(() => abort.abort(), FETCH_TIMEOUT_MS);
    try {
      const headers: Record<string, string> = { accept: 'application/samlmetadata+xml, application/xml;q=0.9, text/xml;q=0.8' };
      if (source.idps && source.etag) headers['if-none-match'] = source.etag;
      if (source.idps && source.lastModified) headers['if-modified-since'] = source.lastModified;
      let response: Response;
      try {
        response = await fetch(url!, { headers, signal: abort.signal, redirect: 'follow' });
      } catch {
        throw new SourceError('unreachable', 'the metadata url could not be fetched');
      }
      if (response.status === 304 && source.idps) {
        await response.body?.cancel();
        return undefined;
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new SourceError('unreachable', `the metadata url answered HTTP ${response.status}`);
      }
      const declared = Number(response.headers.get('content-length') ?? 0);
      if (declared > MAX_METADATA_BYTES) {
        await response.body?.cancel();
        throw new SourceError('too_large', `the metadata is larger than ${MAX_METADATA_BYTES} bytes`);
      }
      const chunks: Uint8Array[] = [];
      let size = 0;
      try {
        for await (const chunk of response.body ?? []) {
          size += chunk.byteLength;
          if (size > MAX_METADATA_BYTES) throw new SourceError('too_large', `the metadata is larger than ${MAX_METADATA_BYTES} bytes`);
          chunks.push(chunk);
        }
      } catch (err) {
        if (err instanceof SourceError) throw err;
        throw new SourceError('unreachable', 'the metadata download was interrupted');
      }
      return {
        text: Buffer.concat(chunks).toString('utf8'),
        etag: response.headers.get('etag') ?? undefined,
        lastModified: response.headers.get('last-modified') ?? undefined,
      };
    } finally {
      clearTimeout(timer);
      this.#aborts.delete(abort);
    }
  }
}
