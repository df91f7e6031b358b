/**
 * A hostile engine's playback: a 1 byte/s trickle, 4 Mb/s of random bytes, valid TS that never
 * carries a PAT, a stream whose PAT stops mid-way (PSI lost), and one that turns to null packets. None of these is health: the
 * actor reports it after --stall-timeout (1.5 s here) and the supervisor reconnects or fails
 * over to the good engine, within a bound; the client gets keepalive, then real data; the
 * fault shows in events and in /ace/status (last_fault).
 */
import t from 'tap';
import { getJson, contentId } from '../helpers/client';
import { setUp, afterCase, play, events, keyOf, until, Viewer } from './hostile';

/** Stall timeout 1.5 s + backoff (≤ 0.8 s) + a new session and first data, with room for a loaded machine. */
const FAILOVER_WITHIN_MS = 7000;

t.test('hostile engine playback', async (t) => {
  const b = await setUp(t);
  const { ace, bad, good } = b;

  const recovers = async (n: number, fault: Record<string, unknown>, kind: string, why: RegExp, what: string, reconnectFirst = false) => {
    const id = contentId(n);
    await bad.setFaults({ ids: { [id]: fault } });
    const t0 = Date.now();
    if (!reconnectFirst) {
      const r = await play(`${ace.origin}/ace/getstream?id=${id}`, 20_000);
      t.equal(r.status, 200, `${what}: 200`);
      t.ok(r.patMs >= 0, `${what}: real data after the failover (first PAT after ${r.patMs} ms)`);
      t.ok(r.nullsBeforePat > 0, `${what}: keepalive null packets until then (${r.nullsBeforePat})`);
    } else {
      // It plays at first, so the viewer keeps reading through the reconnect and the failover.
      const v = new Viewer(`${ace.origin}/ace/getstream?id=${id}`);
      const moved = await until(async () => (await events(ace, 'failover')).some((e) => e.stream === keyOf(id)), 20_000);
      t.ok(moved, `${what}: a failover came`);
      const at = v.bytes;
      t.ok(await until(() => v.bytes > at + 200_000, 5000), `${what}: the viewer plays on after it`);
      t.ok(v.takeGap() < 2000, `${what}: and was never silent long`);
      v.close();
    }
    const ev = (await events(ace)).filter((e) => e.stream === keyOf(id)).reverse();
    const faults = ev.filter((e) => e.fault === kind);
    t.ok(faults.length > 0 && faults.every((e) => why.test(String(e.detail))), `${what}: '${kind}' faults say why: ${faults.map((e) => e.detail).join(' | ')}`);
    // The hostile fault comes first. The failover that follows is normally for the same fault;
    // on a loaded machine the reconnected upstream may stall outright first, which is the same
    // policy at work, so any fault may carry it.
    const seq = ev.map((e) => `${e.kind}${e.fault ? `/${e.fault}` : ''}${e.action ? `/${e.action}` : ''}${e.engine === bad.origin ? '@bad' : e.engine === good.origin ? '@good' : ''}`).join(' ');
    const first = ev.find((e) => e.fault !== undefined);
    t.equal(first?.fault, kind, `${what}: the first fault is '${kind}' (${seq})`);
    t.equal(first?.kind, reconnectFirst ? 'reconnect' : 'failover', `${what}: ${reconnectFirst ? 'it was flowing, so a reconnect first' : 'never playable, so straight to a failover'}`);
    const fo = ev.find((e) => e.kind === 'failover' && e.action === 'next-engine');
    t.ok(fo, `${what}: the supervisor failed over to the other engine`);
    if (fo) t.ok(fo.time - t0 < FAILOVER_WITHIN_MS + (reconnectFirst ? 4000 : 0), `${what}: within the bound (${fo.time - t0} ms)`);
    const live = ev.filter((e) => e.kind === 'stream-live');
    t.ok(live.length > 0 && live.every((e) => reconnectFirst || e.engine === good.origin), `${what}: 'live' only where the data was playable (${live.map((e) => e.engine).join(', ')})`);
    const lastFault = [...ev].reverse().find((e) => e.fault !== undefined);
    const st = await getJson(`${ace.origin}/ace/status?id=${id}`);
    if (st.status === 200) t.equal(st.body.last_fault?.fault, lastFault?.fault, `${what}: /ace/status shows the last fault`);
    await afterCase(t, b, what);
  };

  await recovers(0xb1, { dripBps: 1 }, 'unplayable', /no whole TS packet/, '1 byte/s trickle');
  await recovers(0xb2, { junk: true }, 'unplayable', /no whole TS packet|no PAT/, '4 Mb/s of random bytes');
  await recovers(0xb3, { dropPatAfterBytes: 0 }, 'unplayable', /TS packets but no PAT/, 'TS without a PAT');
  await recovers(0xb4, { dropPatAfterBytes: 400_000 }, 'psi-lost', /no PAT for 1500 ms/, 'PAT lost mid-stream', true);
  await recovers(0xb5, { nullsAfterBytes: 400_000 }, 'unplayable', /TS packets, all null/, 'only null packets after a while', true);
  // 20 KB/s of real TS from a 1.4 Mb/s sample: ~11 % of real time, with a PAT every ~1 s.
  await recovers(0xb6, { dripBps: 20_000 }, 'unplayable', /of real time\): too slow to play/, 'real TS at a tenth of real time', true);
});
