// X-Forwarded-For trust (src/main/http/client-address.ts, C1–C4) and ACEMUX_TRUSTED_PROXIES parsing.
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { clientAddress, remoteLabel, parseTrustedProxies, normalizeAddress } from '../src/main/http/client-address';
import { loadConfig } from '../src/main/config';

const req = (peer: string, xff?: string | string[]) =>
  ({
    socket: { remoteAddress: peer, remotePort: 4242 },
    headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
  }) as unknown as IncomingMessage;

t.test('the trusted list: addresses and CIDRs, IPv4 and IPv6; a bad entry names itself', async (t) => {
  const p = parseTrustedProxies(' 10.0.0.0/8, 192.168.1.5 ,::1, fd00::/8, ::ffff:172.16.0.1');
  t.same(p.entries, ['10.0.0.0/8', '192.168.1.5', '::1', 'fd00::/8', '172.16.0.1']);
  t.same(parseTrustedProxies('').entries, []);
  for (const bad of ['10.0.0.300', 'proxy.local', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/x', '10.0.0.0/'])
    t.throws(() => parseTrustedProxies(bad), { code: 'ACEMUX_ERR_CONFIG', message: new RegExp(bad.replace(/[./]/g, '\\$&')) }, bad);
  t.same(loadConfig([], { ACEMUX_TRUSTED_PROXIES: '10.1.2.3' }).trustedProxies.entries, ['10.1.2.3']);
  t.same(loadConfig(['--trusted-proxies', 'fd00::/8'], {}).trustedProxies.entries, ['fd00::/8']);
  t.same(loadConfig([], {}).trustedProxies.entries, [], 'trusts nobody by default');
  t.throws(() => loadConfig([], { ACEMUX_TRUSTED_PROXIES: 'lb' }), { message: /ACEMUX_TRUSTED_PROXIES: "lb" is not an IP/ });
  t.throws(() => loadConfig(['--drain-delay', '10s'], {}), { message: /--drain-delay: must be shorter than --shutdown-timeout/ });
  t.equal(loadConfig(['--drain-delay', '2s'], {}).drainDelayMs, 2000);
});

t.test('C1/C2: the header counts only from a trusted peer', async (t) => {
  const none = parseTrustedProxies('');
  t.equal(clientAddress(req('10.0.0.9', '1.2.3.4'), none), '10.0.0.9', 'no trusted proxies: header ignored');
  t.equal(clientAddress(req('10.0.0.9', '1.2.3.4')), '10.0.0.9', 'default: header ignored');
  const lb = parseTrustedProxies('10.0.0.0/24');
  t.equal(clientAddress(req('10.0.1.9', '1.2.3.4'), lb), '10.0.1.9', 'an untrusted peer cannot forge it');
  t.equal(clientAddress(req('::ffff:10.0.0.9', '1.2.3.4'), lb), '1.2.3.4', 'IPv4-mapped peers match IPv4 entries');
  t.equal(clientAddress(req('10.0.0.9'), lb), '10.0.0.9', 'trusted peer without the header: the peer');
  t.equal(remoteLabel(req('10.0.0.9'), lb), '10.0.0.9:4242', 'not forwarded: address and port');
  t.equal(remoteLabel(req('10.0.0.9', '1.2.3.4'), lb), '1.2.3.4', 'forwarded: the address alone');
});

t.test('C3/C4: right to left, the first untrusted hop; garbage ends the walk', async (t) => {
  const lb = parseTrustedProxies('10.0.0.0/8, fd00::/8');
  t.equal(clientAddress(req('10.0.0.1', '6.6.6.6, 1.2.3.4, 10.0.0.2'), lb), '1.2.3.4', 'a forged leftmost entry is ignored');
  t.equal(clientAddress(req('10.0.0.1', ['6.6.6.6', '2001:db8::7, fd00::3']), lb), '2001:db8::7', 'repeated headers join, IPv6 hops');
  t.equal(clientAddress(req('10.0.0.1', '10.0.0.5, 10.0.0.2'), lb), '10.0.0.5', 'all hops trusted: the leftmost');
  t.equal(clientAddress(req('10.0.0.1', '1.2.3.4, not-an-ip, 10.0.0.2'), lb), '10.0.0.2', 'garbage: the last believable hop');
  t.equal(clientAddress(req('10.0.0.1', 'garbage'), lb), '10.0.0.1', 'garbage right away: the peer');
  t.equal(clientAddress(req('10.0.0.1', '[2001:db8::9]:5000, 1.2.3.4:80'), lb), '1.2.3.4', 'ports are dropped');
  t.equal(clientAddress(req('10.0.0.1', '[2001:db8::9]:5000, 10.9.9.9:80'), lb), '2001:db8::9');
  t.equal(normalizeAddress('fe80::1%eth0'), 'fe80::1', 'zones dropped');
  t.equal(normalizeAddress('2001:DB8::1'), '2001:db8::1', 'lower case');
});
