// Issue 14, check 4: a node comes back. Channels that moved while it was away and still play stay
// where they are (the stick table follows them, so their new viewers join them there); a channel
// moves home only as a new stream, once nobody watches it and HAProxy's entry expired. Two engine
// sessions for one channel are counted all along: by design there are none, because the entry
// outlives the old node's grace period and engine stop.
import t from 'tap';
import { startCluster, haproxyBinary, SKIP_NO_HAPROXY, Viewer, allPlaying, contentIdOf, duplicates, watchOverlap } from './cluster';
import { until } from '../helpers/wait';

const CHANNELS = 9;
/** deploy/haproxy/haproxy.cfg: stick-table ... expire 15s */
const STICK_EXPIRE_MS = 15_000;

t.test('a returning node gets its channels back only for new streams', { skip: haproxyBinary() ? false : SKIP_NO_HAPROXY }, async (t) => {
  const c = await startCluster({ nodes: 3, sims: 2, simArgs: ['--bitrate', '300000'] });
  t.teardown(() => c.stop());
  const ids = Array.from({ length: CHANNELS }, (_, i) => contentIdOf(300 + i));
  const viewers = ids.map((id) => new Viewer(`${c.base}/ace/getstream?id=${id}`).start());
  t.teardown(() => viewers.forEach((v) => v.close()));
  await allPlaying(viewers);
  const home = new Map(ids.map((id, i) => [id, viewers[i]!.node]));
  const count = (n: string) => [...home.values()].filter((x) => x === n).length;
  const victim = c.nodes.reduce((a, b) => (count(b.name) > count(a.name) ? b : a)).name;
  const movedIdx = ids.map((id, i) => (home.get(id) === victim ? i : -1)).filter((i) => i >= 0);
  t.ok(movedIdx.length >= 2, `${victim} is home to ${movedIdx.length} channels`);

  await c.nodes.find((n) => n.name === victim)!.acemux.stop();
  await until(() => movedIdx.every((i) => viewers[i]!.playing && viewers[i]!.node !== victim), 'its viewers play elsewhere', 15_000, 50);
  await until(
    async () => duplicates(await c.sessions()).length === 0 && (await c.sessions()).length === CHANNELS,
    'one session per channel',
    5000,
    100,
  );
  const interim = new Map(movedIdx.map((i) => [ids[i]!, viewers[i]!.node]));

  // From here on, count every moment a channel has two engine sessions.
  const overlap = watchOverlap(c);
  t.teardown(() => void overlap.stop());

  await c.restart(victim);
  await until(async () => (await c.haproxy.states()).get(victim) === 'UP', `${victim} UP again in HAProxy`, 10_000, 100);
  const upAt = Date.now();

  // Playing channels stay put, and their new viewers join them there.
  const [keep, release] = [movedIdx[0]!, movedIdx[1]!];
  const joiner = new Viewer(`${c.base}/ace/getstream?id=${ids[keep]}`).start();
  t.teardown(() => joiner.close());
  await until(() => joiner.playing, 'a new viewer of a playing moved channel plays', 10_000, 50);
  t.equal(joiner.node, interim.get(ids[keep]!), `a new viewer joins the channel where it plays (${joiner.node}), not its returned home`);
  t.ok(
    movedIdx.every((i) => viewers[i]!.node === interim.get(ids[i]!) && viewers[i]!.ends.length === 1),
    'streams already playing stayed where they were',
  );

  // A channel nobody watches any more moves home as a new stream.
  viewers[release]!.close();
  const releasedAt = Date.now();
  await new Promise((r) => setTimeout(r, STICK_EXPIRE_MS + 1000));
  const comer = new Viewer(`${c.base}/ace/getstream?id=${ids[release]}`).start();
  t.teardown(() => comer.close());
  await until(() => comer.playing, 'a new stream of the released channel plays', 10_000, 50);
  t.equal(comer.node, victim, `once unwatched for ${Date.now() - releasedAt} ms it plays on its home node again`);
  await new Promise((r) => setTimeout(r, 1000));
  const worstOverlapMs = await overlap.stop();
  t.comment(
    `longest time one channel had two engine sessions after ${victim} returned: ${worstOverlapMs} ms (${Date.now() - upAt} ms watched)`,
  );
  t.ok(worstOverlapMs <= 500, `two sessions for one channel never coexisted for long (worst ${worstOverlapMs} ms; 100 ms polling)`);
  t.same(duplicates(await c.sessions()), [], 'one session per channel at the end');
});
