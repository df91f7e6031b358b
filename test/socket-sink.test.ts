// Direct writes (src/main/egress/socket-sink.ts D1-D4) through the egress, on real loopback sockets.
import t, { type Test } from 'tap';
import net from 'node:net';
import { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { createRing, RingWriter, RingReader, TS } from '../src/shared/ring';
import { Egress } from '../src/main/egress/egress';
import { SocketSink } from '../src/main/egress/socket-sink';
import { until } from './helpers/wait';
import { seqPackets as packets } from './helpers/packets';

/** A connected pair: `server` is the socket the egress writes, `client` reads what arrives. */
async function pair(t: Test) {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const [server] = (await once(srv, 'connection')) as [net.Socket];
  srv.close();
  const got: Buffer[] = [];
  client.on('data', (d: Buffer) => got.push(d));
  client.on('error', () => {});
  server.on('error', () => {});
  t.teardown(() => {
    client.destroy();
    server.destroy();
  });
  return { server, client, received: () => Buffer.concat(got) };
}

function egressOn(sab: SharedArrayBuffer) {
  const cuts: string[] = [];
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: 1 << 30,
    lagPolicy: 'skip',
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: (_c, why) => cuts.push(why),
  });
  return { eg, cuts };
}

t.test('a write the kernel takes whole completes at once: the cursor moves with no callback (E1)', async (t) => {
  const { server, received } = await pair(t);
  const sab = createRing(4096 * TS, 4);
  const w = new RingWriter(sab);
  const { eg } = egressOn(sab);
  const sink = new SocketSink(server, true);
  t.type(sink.writeNow, 'function', 'a plain TCP socket takes direct writes');
  const c = eg.add(sink)!;
  w.write(packets(0, 80), 0, 80);
  w.publish(0);
  eg.drain();
  t.equal(c.cursor, 80, 'completed within drain()');
  t.notOk(c.writing, 'nothing in flight');
  t.equal(c.bytes, 80 * TS);
  await until(() => received().length === 80 * TS, 'the bytes arrive');
  t.same(received(), packets(0, 80));
});

t.test('what the kernel does not take goes the stream way, in order, and completes by callback (D3)', async (t) => {
  const { server, client, received } = await pair(t);
  client.pause(); // its receive buffer fills, then ours
  const total = 65536; // 12 MB: more than loopback's socket buffers hold
  const sab = createRing(total * TS, 4);
  const w = new RingWriter(sab);
  const { eg } = egressOn(sab);
  const c = eg.add(new SocketSink(server, true))!;
  let written = 0;
  while (!c.writing && written < total) {
    const n = Math.min(4096, total - written);
    w.write(packets(written, n), 0, n);
    written += n;
    w.publish(0);
    eg.drain();
  }
  t.ok(c.writing, `a write is left in flight once the socket is full (${written} packets published)`);
  t.ok(server.writableLength > 0, "its rest waits in Node's queue");
  client.resume();
  await until(() => received().length === written * TS, 'everything arrives', 10_000);
  t.same(received(), packets(0, written), 'every byte, in order');
  await until(() => !c.writing, 'the callback completes the write');
  t.equal(c.cursor, written);
});

t.test("nothing overtakes bytes Node still holds (D1): the fast path waits for Node's queue", async (t) => {
  const { server, received } = await pair(t);
  const sink = new SocketSink(server, true);
  server.cork();
  server.write('HEAD');
  t.equal(sink.writeNow!(packets(0, 1), null), 0, 'refused while Node holds bytes');
  const sab = createRing(1024 * TS, 4);
  const w = new RingWriter(sab);
  const { eg } = egressOn(sab);
  const c = eg.add(sink)!;
  w.write(packets(0, 10), 0, 10);
  w.publish(0);
  eg.drain();
  t.ok(c.writing, 'so the egress wrote through Node');
  server.uncork();
  await until(() => received().length === 4 + 10 * TS, 'the bytes arrive');
  t.equal(received().subarray(0, 4).toString(), 'HEAD', 'in the order they were written');
  t.same(received().subarray(4), packets(0, 10));
  await until(() => !c.writing, 'completed');
  t.equal(sink.writeNow!(packets(10, 1), null), TS, 'and direct again once the queue is empty');
});

t.test('no fast path without a live fd, over TLS, or when turned off (D2, D4)', async (t) => {
  const { server } = await pair(t);
  t.equal(new SocketSink(server, false).writeNow, undefined, 'turned off');
  t.equal(new SocketSink(new TLSSocket(new net.Socket()), true).writeNow, undefined, 'TLS');
  const sink = new SocketSink(server, true);
  server.destroy();
  t.equal(sink.writeNow!(packets(0, 1), null), 0, 'a destroyed socket has no fd: nothing written anywhere');
});

t.test('a socket the peer reset fails the direct write: the egress cuts it as write-error', async (t) => {
  const { server, client } = await pair(t);
  const sab = createRing(1024 * TS, 4);
  const w = new RingWriter(sab);
  const { eg, cuts } = egressOn(sab);
  const c = eg.add(new SocketSink(server, true))!;
  client.resetAndDestroy();
  let n = 0;
  await until(() => {
    w.write(packets(n, 10), 0, 10);
    n += 10;
    w.publish(0);
    eg.drain();
    return cuts.length > 0 || c.removed;
  }, 'the write fails');
  t.same(cuts, ['write-error']);
  t.ok(server.destroyed, 'its socket destroyed');
});

/** A sink whose kernel takes everything at once: the egress's direct path without a socket. */
class TakesAll {
  got: Buffer[] = [];
  streamWrites = 0;
  readonly writeNow = (a: Buffer, b: Buffer | null) => {
    this.got.push(Buffer.from(a));
    if (b) this.got.push(Buffer.from(b));
    return a.length + (b?.length ?? 0);
  };
  write(_chunk: Buffer, cb: (err?: Error | null) => void) {
    this.streamWrites++;
    cb();
    return true;
  }
  cork() {}
  uncork() {}
  destroy() {}
}

t.test('a client written first in a drain does not make the others look late (E2)', async (t) => {
  const sab = createRing(4096 * TS, 4);
  const w = new RingWriter(sab);
  const cuts: string[] = [];
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: 100 * TS,
    lagPolicy: 'skip',
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: (_c, why) => cuts.push(why),
  });
  const a = new TakesAll();
  const b = new TakesAll();
  const ca = eg.add(a)!;
  const cb = eg.add(b)!;
  w.write(packets(0, 400), 0, 400);
  w.addJoin(300, 0); // a join point a skip could jump to
  w.publish(0);
  eg.drain();
  t.equal(ca.cursor, 400);
  t.equal(cb.cursor, 400, 'both completed the same range');
  t.equal(ca.skips + cb.skips, 0, 'nobody skipped: both were at the same place when the drain began');
  t.same(Buffer.concat(b.got), packets(0, 400));
  t.equal(a.streamWrites + b.streamWrites, 0, 'all through the direct path');
  t.same(cuts, []);
});

t.test('a client far behind catches up by at most four whole writes a pump (fair to the others)', async (t) => {
  const sab = createRing(16384 * TS, 4);
  const w = new RingWriter(sab);
  const eg = new Egress(new RingReader(sab), {
    lagLimitBytes: 1 << 30,
    lagPolicy: 'skip',
    joinDelayMs: 0,
    clientTimeoutMs: 60_000,
    onCut: () => {},
  });
  const s = new TakesAll();
  const c = eg.add(s)!;
  w.write(packets(0, 8000), 0, 8000);
  w.publish(0);
  eg.drain();
  const perWrite = s.got[0]!.length / TS;
  t.equal(c.cursor, 4 * perWrite, `four writes of ${perWrite} packets in the first drain`);
  eg.drain();
  t.equal(c.cursor, 8000, 'the rest in the next');
  t.same(Buffer.concat(s.got), packets(0, 8000));
});
