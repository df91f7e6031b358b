// Issue 14, check 3: SIGTERM one node. It turns unready at once, HAProxy stops sending it new
// viewers, its viewers keep playing through the drain delay and then end cleanly within the
// shutdown bound, and it stops its engine sessions itself.
import t from 'tap';
import {
  startCluster,
  haproxyBinary,
  SKIP_NO_HAPROXY,
  Viewer,
  playAndPickVictim,
  contentIdOf,
  duplicates,
  watchOverlap,
  text,
} from './cluster';
import { until } from '../helpers/wait';

const CHANNELS = 12;
const PER_CHANNEL = 2;
const DRAIN_MS = 2000; // NODE_FLAGS: --drain-delay 2s
const SHUTDOWN_MS = 8000; // acemux's default --shutdown-timeout

t.test('SIGTERM drains a node', { skip: haproxyBinary() ? false : SKIP_NO_HAPROXY }, async (t) => {
  const c = await startCluster({ nodes: 3, sims: 2, simArgs: ['--bitrate', '300000'] });
  t.teardown(() => c.stop());
  const ids = Array.from({ length: CHANNELS }, (_, i) => contentIdOf(200 + i));
  const { viewers, nodeOf, victim } = await playAndPickVictim(t, c, ids, PER_CHANNEL);
  const theirs = viewers.filter((v) => v.node === victim.name);
  const others = viewers.filter((v) => v.node !== victim.name);
  const victimChannels = ids.filter((id) => nodeOf.get(id) === victim.name);
  const stopsBefore = (await Promise.all(c.sims.map((s) => s.stats()))).reduce((n, s) => n + s.stopCommands, 0);
  for (const v of viewers) v.maxGapMs = 0;
  const exited = new Promise<number | null>((ok) => victim.acemux.proc.once('exit', (code) => ok(code)));

  // Count how long any channel has two engine sessions: new viewers start the channel on its next
  // node while the draining node still plays it for its own viewers (the drain delay).
  const overlap = watchOverlap(c);
  t.teardown(() => void overlap.stop());
  const termAt = Date.now();
  victim.acemux.proc.kill('SIGTERM');
  let unreadyMs = -1;
  await until(
    async () => {
      const r = await text(`http://127.0.0.1:${victim.port}/readyz`).catch(() => '');
      if (r && (JSON.parse(r) as { ready: boolean; draining: boolean }).draining) unreadyMs = Date.now() - termAt;
      return unreadyMs >= 0;
    },
    '/readyz says draining',
    1000,
    10,
  );
  t.ok(unreadyMs < 500, `/readyz answers 503 draining ${unreadyMs} ms after SIGTERM`);
  // Before the health checks notice, HAProxy still sends the channel's requests to the draining
  // node: its 503 is retried on the next node of the ring (retry-on 503, redispatch).
  const stillUp = (await c.haproxy.states()).get(victim.name);
  const early = new Viewer(`${c.base}/ace/getstream?id=${victimChannels[0]}`);
  early.reconnect = false;
  early.start();
  t.teardown(() => early.close());
  await until(() => early.playing, 'an early new viewer plays', 10_000, 50);
  t.ok(
    early.node !== victim.name && early.statuses.join() === '200',
    `a new viewer while HAProxy still had the node ${stillUp} went to ${early.node}, with no error`,
  );
  await until(
    async () => (await c.haproxy.states()).get(victim.name)!.startsWith('DOWN'),
    'HAProxy marks the node DOWN',
    DRAIN_MS + 1000,
    50,
  );
  const downMs = Date.now() - termAt;
  t.comment(`HAProxy marked ${victim.name} DOWN ${downMs} ms after SIGTERM`);

  // New viewers of the draining node's channels, while its own viewers still play there.
  const late = victimChannels.map((id) => new Viewer(`${c.base}/ace/getstream?id=${id}`));
  late.forEach((v) => {
    v.reconnect = false;
    v.start();
  });
  t.teardown(() => late.forEach((v) => v.close()));
  await until(() => late.every((v) => v.playing), 'new viewers play', 10_000, 50);
  t.ok(
    late.every((v) => v.node && v.node !== victim.name && v.statuses.join() === '200'),
    `new viewers went elsewhere at the first try (${late.map((v) => v.node).join(', ')})`,
  );

  await until(() => theirs.every((v) => v.ends.length > 0), "the draining node's viewers end", SHUTDOWN_MS, 50);
  const endMs = Math.max(...theirs.map((v) => v.ends[0]!.at - termAt));
  t.ok(
    theirs.every((v) => v.ends[0]!.how === 'end' && v.ends[0]!.status === 200),
    "its viewers' streams ended cleanly (end of body, no reset)",
  );
  t.ok(
    endMs >= DRAIN_MS - 100 && endMs < SHUTDOWN_MS,
    `they played through the drain delay and ended ${endMs} ms after SIGTERM (bound ${SHUTDOWN_MS} ms)`,
  );
  t.equal(await exited, 0, 'the node exited cleanly');
  const stops = (await Promise.all(c.sims.map((s) => s.stats()))).reduce((n, s) => n + s.stopCommands, 0) - stopsBefore;
  t.equal(stops, victimChannels.length, `it sent the engines a stop for each of its ${victimChannels.length} sessions`);
  t.ok(
    others.every((v) => v.connects === 1 && v.ends.length === 0 && v.maxGapMs < 1000),
    "the other nodes' viewers never noticed",
  );

  await until(() => theirs.every((v) => v.playing), "the drained node's viewers play again elsewhere", 10_000, 50);
  t.ok(
    theirs.every((v) => v.node !== victim.name),
    "they reconnected to the channel's new node",
  );
  await until(
    async () => {
      const s = await c.sessions();
      return s.length === CHANNELS && duplicates(s).length === 0;
    },
    'one engine session per channel',
    5000,
    100,
  );
  t.pass('one engine session per channel across the cluster again');
  const worstOverlapMs = await overlap.stop();
  t.comment(`two sessions for one channel coexisted ${worstOverlapMs} ms at most during the drain`);
  t.ok(worstOverlapMs <= DRAIN_MS + 1000, `at most the drain delay plus the engine stop (${worstOverlapMs} ms)`);
  const lateGap = Math.max(early.maxGapMs, ...late.map((v) => v.maxGapMs));
  t.ok(
    late.every((v) => v.ends.length === 0) && early.ends.length === 0 && lateGap < 1000,
    `the new viewers played on without a cut or gap meanwhile (longest silence ${lateGap} ms)`,
  );
});
