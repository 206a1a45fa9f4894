/**
 * The client's address, for login throttling and audit records: one
 * function, so that the address a lockout counts and the address an audit
 * event names are the same one.
 *
 * Behind proxies (`trustProxy`), `X-Forwarded-For` is a list every hop
 * appends to; only the entries added by proxies of the deployment can be
 * believed, and the left-most one is whatever the client wrote. The client
 * is therefore the right-most address that is not one of `trustedProxies`
 * (the rule of RFC 7239 §5.2's "for" chain as Express' proxy-addr and
 * nginx's `real_ip_recursive` apply it). Koa's own `ctx.ip` takes the
 * left-most entry, so fedgate sets `ctx.request.ip` from here (src/app.ts).
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { parseAddressRange } from '../config/index.ts';

/** At most this many `X-Forwarded-For` entries are looked at, right to left. */
const MAX_HOPS = 32;

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/**
 * A matcher for a list of IP addresses and CIDR ranges (`config.trustedProxies`).
 *
 * @throws Error when an entry is not an address or range (the configuration loader refuses those first).
 */
export function addressMatcher(entries: readonly string[]): (address: string | undefined) => boolean {
  if (entries.length === 0) return () => false;
  const list = new BlockList();
  for (const entry of entries) {
    const range = parseAddressRange(entry);
    if (!range) throw new Error(`trustedProxies: ${entry} is not an IP address or CIDR range`);
    list.addSubnet(range.address, range.prefix, range.family);
  }
  return (address) => {
    if (!address) return false;
    const normalised = normaliseAddress(address);
    const family = isIP(normalised);
    return family !== 0 && list.check(normalised, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/** One `X-Forwarded-For` entry as a bare address (`[2001:db8::1]:443` and `192.0.2.1:443` lose their port); undefined when it is none. */
function hopAddress(entry: string): string | undefined {
  let value = entry.trim();
  if (value.startsWith('[')) value = value.slice(1, value.indexOf(']') === -1 ? undefined : value.indexOf(']'));
  else if (/^[\d.]+:\d+$/.test(value)) value = value.slice(0, value.indexOf(':'));
  value = normaliseAddress(value);
  return isIP(value) ? value : undefined;
}

export interface ClientAddressOptions {
  /** `config.trustProxy`: the listener is reached through proxies that append to `X-Forwarded-For`. */
  trustProxy: boolean;
  /** `config.trustedProxies`: the proxies' addresses; empty means only the immediate peer is one. */
  trustedProxies: readonly string[];
}

/**
 * Builds the function that names a request's client address:
 *
 * - without `trustProxy`, the TCP peer;
 * - with it, and `trustedProxies` listing addresses, the peer when it is
 *   not one of them (a request that did not come through the proxies has
 *   no believable `X-Forwarded-For`), else the right-most `X-Forwarded-For`
 *   entry that is not one of them;
 * - with it and no `trustedProxies`, the peer is the one proxy, and the
 *   right-most entry (the address it saw) is the client.
 *
 * An entry that is not an IP address ends the walk at the last address
 * believed. All entries trusted: the left-most.
 */
export function clientAddressResolver(options: ClientAddressOptions): (req: IncomingMessage) => string {
  const trusted = addressMatcher(options.trustedProxies);
  const anyListed = options.trustedProxies.length > 0;
  return (req) => {
    const peer = normaliseAddress(req.socket.remoteAddress ?? '');
    if (!options.trustProxy || (anyListed && !trusted(peer))) return peer;
    const header = req.headers['x-forwarded-for'];
    if (!header) return peer;
    const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
    let believed = peer;
    for (let i = hops.length - 1, seen = 0; i >= 0 && seen < MAX_HOPS; i -= 1, seen += 1) {
      const hop = hopAddress(hops[i]!);
      if (hop === undefined) return believed;
      if (!trusted(hop)) return hop;
      believed = hop;
    }
    return believed;
  };
}
