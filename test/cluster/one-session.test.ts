// Issue 14, check 1: 30 channels × 3 viewers through the shipped HAProxy configuration, and every
// channel has exactly one engine session across the cluster — counted by the simulators, not by
// acemux. Also: the real client address reaches the node through X-Forwarded-For.
import t from 'tap';
import { request } from 'node:http';
import { startCluster, haproxyBinary, SKIP_NO_HAPROXY, Viewer, allPlaying, contentIdOf, duplicates, text } from './cluster';

const CHANNELS = 30;

/** A HEAD request's headers (HEAD of a stream URL starts nothing in acemux). */
const headOf = (url: string) =>
  new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
    const req = request(url, { method: 'HEAD', agent: false }, (res) => {
      res.resume();
      resolve(res.headers);
    });
    req.on('error', reject).end();
  });
const PER_CHANNEL = 3;

t.test('one engine session per channel across 3 nodes and 2 engines', { skip: haproxyBinary() ? false : SKIP_NO_HAPROXY }, async (t) => {
  // 300 kb/s keeps 90 viewers cheap on a shared 2-core machine; the routing does not care.
  const c = await startCluster({ nodes: 3, sims: 2, simArgs: ['--bitrate', '300000'] });
  t.teardown(() => c.stop());
  const ids = Array.from({ length: CHANNELS }, (_, i) => contentIdOf(i + 1));
  const viewers: Viewer[] = [];
  for (const id of ids) for (let k = 0; k < PER_CHANNEL; k++) viewers.push(new Viewer(`${c.base}/ace/getstream?id=${id}`).start());
  // One viewer says it is someone else: a trusted proxy (HAProxy) appends the real peer, and the
  // node walks the chain right to left to the first untrusted address.
  const forged = new Viewer(`${c.base}/ace/getstream?id=${ids[0]}`, { 'x-forwarded-for': '203.0.113.7' }).start();
  t.teardown(() => [...viewers, forged].forEach((v) => v.close()));
  await allPlaying([...viewers, forged], 30_000);

  const sessions = await c.sessions();
  t.same(duplicates(sessions), [], 'no channel has two engine sessions');
  t.equal(sessions.length, CHANNELS, `exactly ${CHANNELS} engine sessions across both simulators`);
  t.same(new Set(sessions.map((s) => s.content)), new Set(ids), 'one per channel, every channel');
  const started = (await Promise.all(c.sims.map((s) => s.stats()))).reduce((n, st) => n + st.sessionsStarted, 0);
  t.equal(started, CHANNELS, 'and no session was ever started twice (simulators count every getstream session)');
  t.ok(
    c.sims.every((s, i) => sessions.some((x) => x.sim === i)),
    'both engines carry sessions (shared layout)',
  );

  const byChannel = new Map<string, Set<string>>();
  viewers.forEach((v, i) =>
    byChannel.set(ids[Math.floor(i / PER_CHANNEL)]!, (byChannel.get(ids[Math.floor(i / PER_CHANNEL)]!) ?? new Set()).add(v.node)),
  );
  t.ok(
    [...byChannel.values()].every((s) => s.size === 1),
    'all viewers of a channel are on one node',
  );
  const used = new Set(viewers.map((v) => v.node));
  t.equal(used.size, 3, `consistent hashing spreads channels over all nodes (${[...used].join(', ')})`);
  t.ok(
    viewers.every((v) => v.connects === 1 && v.ends.length === 0),
    'nobody was cut or had to reconnect',
  );

  // The shipped key: every URL form of one content reaches the node that plays it.
  const nodeFor = async (path: string) => (await headOf(`${c.base}${path}`))['x-acemux-node'];
  const x = ids[3]!;
  const xNode = viewers[3 * PER_CHANNEL]!.node;
  for (const path of [
    `/ace/getstream?id=${x.toUpperCase()}`,
    `/ace/getstream?foo=1&id=${x}`,
    `/ace/manifest.m3u8?id=${x}`,
    `/ace/hls/${x}/segment-1.ts`,
    `/ace/status?id=${x}`,
  ]) {
    t.equal(await nodeFor(path), xNode, `${path.replace(x, 'X').replace(x.toUpperCase(), 'X(upper case)')} goes to X's node`);
  }
  const names = await Promise.all(['/ace/channel/Sport%20One', '/ace/channel/sport%20one', '/ace/channel/SPORT%20ONE'].map(nodeFor));
  t.ok(names[0] && names.every((n) => n === names[0]), `a channel name reaches one node whatever its case (${names.join(', ')})`);
  t.ok(
    (await Promise.all(['/metrics', '/api/streams'].map(nodeFor))).every((n) => n === 'node1'),
    '/metrics and /api/ go to the chosen node (the first one up)',
  );

  const owner = c.nodes.find((n) => n.name === forged.node)!;
  const status = JSON.parse(await text(`http://127.0.0.1:${owner.port}/ace/status?id=${ids[0]}`)) as {
    client_list: Array<{ remote: string }>;
  };
  const remotes = status.client_list.map((x) => x.remote);
  t.ok(remotes.includes('203.0.113.7'), `the forwarded client address is what the node shows (${remotes.join(', ')})`);
  t.equal(
    remotes.filter((r) => r === '127.0.0.1').length,
    PER_CHANNEL,
    "the others show their real (loopback) address, not HAProxy's port",
  );
});
