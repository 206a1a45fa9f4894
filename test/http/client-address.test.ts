import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { clientAddressResolver } from '../../src/http/client-address.ts';

/** The two parts of a request the resolver reads. */
const request = (peer: string, forwardedFor?: string | string[]) =>
  ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } }) as unknown as IncomingMessage;

describe('the client address', () => {
  it('is the peer without trustProxy, whatever X-Forwarded-For says', () => {
    const resolve = clientAddressResolver({ trustProxy: false, trustedProxies: ['10.0.0.0/8'] });
    assert.equal(resolve(request('::ffff:10.0.0.5', '6.6.6.6')), '10.0.0.5');
  });

  it('is the right-most address no trusted proxy wrote, never the left-most one the client wrote', () => {
    const resolve = clientAddressResolver({ trustProxy: true, trustedProxies: ['10.0.0.0/8', '2001:db8::/32'] });
    assert.equal(resolve(request('10.0.0.1', '6.6.6.6, 203.0.113.9, 10.0.0.7')), '203.0.113.9');
    assert.equal(resolve(request('10.0.0.1', ['6.6.6.6', '203.0.113.9'])), '203.0.113.9', 'repeated header lines are one list');
    assert.equal(resolve(request('10.0.0.1', '6.6.6.6, [2001:db9::1]:443, 2001:db8::5')), '2001:db9::1');
    assert.equal(resolve(request('10.0.0.1', 'garbage, 10.0.0.9')), '10.0.0.9', 'what is not an address ends the walk at the last one believed');
    assert.equal(resolve(request('10.0.0.1', '10.0.0.3, 10.0.0.2')), '10.0.0.3', 'all trusted: the left-most');
    assert.equal(resolve(request('10.0.0.1')), '10.0.0.1');
    assert.equal(resolve(request('198.51.100.4', '6.6.6.6')), '198.51.100.4', 'not from a trusted proxy: the header is the client\'s own claim');
  });

  it('with trustProxy and no trustedProxies, takes the peer as the one proxy', () => {
    const resolve = clientAddressResolver({ trustProxy: true, trustedProxies: [] });
    assert.equal(resolve(request('10.0.0.1', '6.6.6.6, 203.0.113.9')), '203.0.113.9');
  });
});
