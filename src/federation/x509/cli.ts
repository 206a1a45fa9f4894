/**
 * `fedgate x509 verify`: the offline verifier. It validates a certificate
 * (and the chain sent along) against a trust anchor directory with the
 * function and options certificate login uses (verifyChain,
 * {@link verifyOptionsFrom}), so operators can debug a trust directory, a
 * CRL or a user's proxy without a browser.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { X509Config } from '../../config/x509-schema.ts';
import { certificatesFromInput } from './certificate.ts';
import { loadTrustDirectory } from './trust-store.ts';
import { verifyChain, verifyOptionsFrom } from './verify.ts';

/** The usage lines of the x509 commands, for the CLI's help. */
export const X509_USAGE = `  x509 verify --trust DIR [--chain FILE] [--at ISO-TIME] LEAF
                                    validate a certificate as certificate login does (LEAF: PEM or
                                    DER; a proxy file may hold the whole chain; --chain adds the
                                    certificates sent along): exit 0 and the identity (the
                                    end-entity DN for proxies) when valid, 1 and the reason when not
`;

/** Where the command writes. */
export interface X509CommandOutput {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

async function readCertificates(file: string): Promise<Buffer[]> {
  return certificatesFromInput(await readFile(file));
}

/**
 * Runs `x509 <argv>`; resolves to the exit code: 0 valid, 1 refused, 2
 * usage or input errors.
 */
export async function runX509Command(argv: string[], options: X509Config, io: X509CommandOutput): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { trust: { type: 'string' }, chain: { type: 'string', multiple: true }, at: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    io.stderr.write(`fedgate: ${(err as Error).message}\nusage:\n${X509_USAGE}`);
    return 2;
  }
  const { positionals, values } = parsed;
  if (values.help) {
    io.stdout.write(`usage:\n${X509_USAGE}`);
    return 0;
  }
  const [action, leafFile, ...extra] = positionals;
  if (action !== 'verify' || !leafFile || extra.length || !values.trust) {
    io.stderr.write(`usage:\n${X509_USAGE}`);
    return 2;
  }
  const now = values.at === undefined ? new Date() : new Date(values.at);
  if (Number.isNaN(now.getTime())) {
    io.stderr.write(`fedgate: --at ${values.at} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)\n`);
    return 2;
  }
  let chain: Buffer[];
  let trust;
  try {
    chain = [...await readCertificates(leafFile), ...(await Promise.all((values.chain ?? []).map(readCertificates))).flat()];
    trust = await loadTrustDirectory(values.trust);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    io.stderr.write(`fedgate: ${code ? `${(err as NodeJS.ErrnoException).path ?? ''}: ${code}` : (err as Error).message}\n`);
    return 2;
  }
  for (const problem of trust.problems) io.stderr.write(`fedgate: warning: trust anchors: ${problem}\n`);

  const result = verifyChain(chain, trust, { ...verifyOptionsFrom(options), now });
  if (!result.ok) {
    io.stdout.write(`refused: ${result.reason}\n${result.message}\n`);
    if (result.subject) io.stdout.write(`subject: ${result.subject}\n`);
    return 1;
  }
  io.stdout.write([
    `valid: ${result.subject}`,
    `issuer: ${result.issuer}`,
    ...(result.proxies.length ? [`proxies: ${result.proxies.length}${result.limited ? ' (limited)' : ''}, leaf ${result.proxies[0]!.subjectDn}`] : []),
    `path: ${result.path.map((c) => c.subjectDn).join(' <- ')}`,
    ...result.warnings.map((w) => `warning: ${w}`),
    '',
  ].join('\n'));
  return 0;
}
