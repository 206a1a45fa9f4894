/**
 * A throw-away PKI made with the openssl command line for the X.509 tests:
 * CAs with `openssl ca` databases (so certificates can be revoked and CRLs
 * issued, expired ones included), end-entity certificates, and RFC 3820 /
 * legacy proxy certificates signed by end-entity certificates. Everything
 * lives in a temporary directory the caller removes; no key leaves it.
 */
import { execFile } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate with its key, as files and in memory. */
export interface Issued {
  name: string;
  subject: string;
  certFile: string;
  keyFile: string;
  pem: string;
  der: Buffer;
  key: string;
  serial: string;
}

/** A CA: an issued certificate plus its `openssl ca` configuration. */
export interface Ca extends Issued {
  config: string;
}

export interface KeyOptions {
  /** `rsa` for RSA-2048 (or that many bits); EC P-256 otherwise (faster). */
  rsa?: boolean | number;
}

export interface IssueOptions extends KeyOptions {
  /** Lines of the extension section. */
  extensions?: string[];
  /** Signature digest (`openssl ca -md`), default sha256. */
  md?: string;
  /** `YYMMDDHHMMSSZ` validity bounds (for expired certificates). */
  startDate?: string;
  endDate?: string;
  days?: number;
}

const REQ_CONFIG = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n';

/** End-entity extensions of an ordinary personal certificate. */
export const USER_EXTENSIONS = [
  'basicConstraints = critical,CA:FALSE',
  'keyUsage = critical,digitalSignature,keyEncipherment',
  'extendedKeyUsage = clientAuth,emailProtection',
  'subjectKeyIdentifier = hash',
  'authorityKeyIdentifier = keyid',
];

/** CA extensions; `pathlen` limits the intermediates below. */
export function caExtensions(pathlen?: number): string[] {
  return [
    `basicConstraints = critical,CA:TRUE${pathlen === undefined ? '' : `,pathlen:${pathlen}`}`,
    'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
  ];
}

/** RFC 3820 proxy extensions (`language` one of openssl's names: id-ppl-inheritAll, id-ppl-independent, or an OID). */
export function proxyExtensions(language = 'id-ppl-inheritAll', pathlen?: number): string[] {
  return [
    'basicConstraints = critical,CA:FALSE',
    'keyUsage = critical,digitalSignature,keyEncipherment',
    `proxyCertInfo = critical,language:${language}${pathlen === undefined ? '' : `,pathlen:${pathlen}`}`,
  ];
}

export class Pki {
  readonly dir: string;
  #serial = 4096;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<Pki> {
    const pki = new Pki(await mkdtemp(join(tmpdir(), 'fedgate-pki-')));
    await writeFile(join(pki.dir, 'req.cnf'), REQ_CONFIG);
    return pki;
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  async openssl(...args: string[]): Promise<string> {
    const { stdout } = await run('openssl', args, { cwd: this.dir });
    return stdout;
  }

  #keyArgs(options: KeyOptions): string[] {
    return options.rsa ? ['-newkey', `rsa:${options.rsa === true ? 2048 : options.rsa}`] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  }

  async #load(name: string, subject: string, certFile: string, keyFile: string): Promise<Issued> {
    const pem = await readFile(certFile, 'utf8');
    const derFile = join(this.dir, `${name}.der`);
    await this.openssl('x509', '-in', certFile, '-outform', 'DER', '-out', derFile);
    const serial = (await this.openssl('x509', '-in', certFile, '-noout', '-serial')).trim().replace(/^serial=/, '').toLowerCase().replace(/^0+/, '');
    return { name, subject, certFile, keyFile, pem, der: await readFile(derFile), key: await readFile(keyFile, 'utf8'), serial };
  }

  async #caDatabase(name: string, certFile: string, keyFile: string): Promise<string> {
    const home = join(this.dir, `${name}-db`);
    await mkdir(join(home, 'new'), { recursive: true });
    await writeFile(join(home, 'index.txt'), '');
    await writeFile(join(home, 'index.txt.attr'), 'unique_subject = no\n');
    await writeFile(join(home, 'crlnumber'), '01\n');
    const config = join(home, 'ca.cnf');
    await writeFile(config, [
      '[ca]', 'default_ca = this', '[this]',
      `database = ${join(home, 'index.txt')}`, `new_certs_dir = ${join(home, 'new')}`,
      `certificate = ${certFile}`, `private_key = ${keyFile}`,
      `crlnumber = ${join(home, 'crlnumber')}`,
      'rand_serial = yes', 'default_md = sha256', 'default_days = 30', 'default_crl_days = 7', 'policy = any', 'unique_subject = no',
      'preserve = yes', 'email_in_dn = yes', 'copy_extensions = none',
      '[any]', 'commonName = optional',
      '',
    ].join('\n'));
    return config;
  }

  async #ext(name: string, lines: string[]): Promise<string> {
    const file = join(this.dir, `${name}.ext`);
    await writeFile(file, `[ext]\n${lines.join('\n')}\n`);
    return file;
  }

  /** A self-signed root CA. */
  async root(name: string, subject: string, options: KeyOptions & { pathlen?: number; md?: string; days?: number; extensions?: string[] } = {}): Promise<Ca> {
    const certFile = join(this.dir, `${name}.pem`);
    const keyFile = join(this.dir, `${name}.key`);
    const config = join(this.dir, `${name}.req.cnf`);
    const extensions = options.extensions ?? caExtensions(options.pathlen).filter((l) => !l.startsWith('authorityKeyIdentifier'));
    await writeFile(config, `${REQ_CONFIG}[ext]\n${extensions.join('\n')}\n`);
    await this.openssl('req', '-config', config, '-utf8', '-x509', ...this.#keyArgs(options), '-nodes', '-keyout', keyFile,
      '-out', certFile, '-subj', subject, '-days', String(options.days ?? 3650), '-set_serial', String(this.#serial++), '-extensions', 'ext', ...(options.md ? [`-${options.md}`] : []));
    const issued = await this.#load(name, subject, certFile, keyFile);
    return { ...issued, config: await this.#caDatabase(name, certFile, keyFile) };
  }

  /** A certificate issued by `ca` with `openssl ca`. */
  async issue(ca: Ca, name: string, subject: string, options: IssueOptions = {}): Promise<Issued> {
    const certFile = join(this.dir, `${name}.pem`);
    const keyFile = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    await this.openssl('req', '-config', join(this.dir, 'req.cnf'), '-utf8', '-new', ...this.#keyArgs(options), '-nodes', '-keyout', keyFile, '-out', csr, '-subj', subject);
    const ext = await this.#ext(name, options.extensions ?? USER_EXTENSIONS);
    const dates = options.startDate ? ['-startdate', options.startDate, '-enddate', options.endDate!] : ['-days', String(options.days ?? 30)];
    await this.openssl('ca', '-config', ca.config, '-batch', '-notext', '-utf8', '-preserveDN', '-in', csr, '-out', certFile, '-extfile', ext, '-extensions', 'ext', ...dates, ...(options.md ? ['-md', options.md] : []));
    return this.#load(name, subject, certFile, keyFile);
  }

  /** An intermediate CA issued by `ca`. */
  async intermediate(ca: Ca, name: string, subject: string, options: IssueOptions & { pathlen?: number } = {}): Promise<Ca> {
    return this.asCa(await this.issue(ca, name, subject, { days: 365, ...options, extensions: options.extensions ?? caExtensions(options.pathlen) }));
  }

  /** Gives an issued certificate an `openssl ca` database, so it can issue (openssl does not check it may). */
  async asCa(issued: Issued): Promise<Ca> {
    return { ...issued, config: await this.#caDatabase(issued.name, issued.certFile, issued.keyFile) };
  }

  /** A proxy certificate signed by `issuer` (an end-entity or another proxy), its subject the issuer's plus `/CN=<cn>`. */
  async proxy(issuer: Issued, name: string, cn: string, extensions: string[], subject = `${issuer.subject}/CN=${cn}`): Promise<Issued> {
    const certFile = join(this.dir, `${name}.pem`);
    const keyFile = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    await this.openssl('req', '-config', join(this.dir, 'req.cnf'), '-utf8', '-new', ...this.#keyArgs({}), '-nodes', '-keyout', keyFile, '-out', csr, '-subj', subject);
    const ext = await this.#ext(name, extensions);
    await this.openssl('x509', '-req', '-in', csr, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', String(this.#serial++), '-days', '1', '-extfile', ext, '-extensions', 'ext', '-out', certFile);
    return this.#load(name, subject, certFile, keyFile);
  }

  async revoke(ca: Ca, cert: Issued): Promise<void> {
    await this.openssl('ca', '-config', ca.config, '-revoke', cert.certFile);
  }

  /** The CA's CRL (PEM text); `lastUpdate`/`nextUpdate` as `YYMMDDHHMMSSZ` for stale ones. */
  async crl(ca: Ca, options: { lastUpdate?: string; nextUpdate?: string; extensions?: string[] } = {}): Promise<string> {
    const out = join(this.dir, `${ca.name}-${this.#serial++}.crl`);
    const dates = options.nextUpdate ? ['-crl_lastupdate', options.lastUpdate!, '-crl_nextupdate', options.nextUpdate] : [];
    let exts: string[] = [];
    if (options.extensions) {
      const section = `crl_ext_${this.#serial++}`;
      await appendFile(ca.config, `[${section}]\n${options.extensions.join('\n')}\n`);
      exts = ['-crlexts', section];
    }
    await this.openssl('ca', '-config', ca.config, '-gencrl', '-out', out, ...dates, ...exts);
    return readFile(out, 'utf8');
  }

  /** OpenSSL's subject hash (the `<hash>.0` file name). */
  async hash(cert: Issued): Promise<string> {
    return (await this.openssl('x509', '-in', cert.certFile, '-noout', '-hash')).trim();
  }
}
