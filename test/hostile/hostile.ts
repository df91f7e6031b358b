/**
 * Shared by the hostile-engine tests: a good engine and a hostile one (two real simulator
 * processes), the real acemux in front of both, a viewer of a good channel that reads for the
 * whole file, and the checks made after every case — the process is alive, its RSS is bounded,
 * the good viewer still plays, and no engine session is left behind.
 */
import type { Test } from 'tap';
import { readFileSync } from 'node:fs';
import { request, type ClientRequest } from 'node:http';
import { startSim, type SimHandle } from '../helpers/sim';
import { startAcemux, type Acemux } from '../helpers/acemux';
import { getJson, contentId, type Json } from '../helpers/client';

export const TS = 188;
export const NULL_PID = 0x1fff;
/** RSS ceiling after any case: acemux idles near 100 MB; the old failures reached 1–6 GB. */
export const RSS_LIMIT_MB = 400;
export const FAST = [
  '--stall-timeout',
  '1500ms',
  '--first-data-timeout',
  '4s',
  '--playback-timeout',
  '3s',
  '--retry-base',
  '150ms',
  '--retry-cap',
  '800ms',
  '--retry-attempts',
  '3',
  '--grace',
  '400ms',
  '--keepalive',
  '200ms',
  '--stat-interval',
  '500ms',
  '--engine-timeout',
  '3s',
  '--engine-probe',
  '500ms',
];

export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Polls `ok` every 50 ms until it holds or `ms` passes; returns whether it held. */
export async function until(ok: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await ok()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A player that keeps reading; counts bytes and the longest silence between two reads. */
export class Viewer {
  bytes = 0;
  maxGapMs = 0;
  private last = 0;
  private readonly req: ClientRequest;
  constructor(url: string) {
    this.req = request(url, { agent: false }, (res) => {
      res.on('data', (d: Buffer) => {
        const now = Date.now();
        if (this.last) this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
        this.last = now;
        this.bytes += d.length;
      });
    });
    this.req.on('error', () => {});
    this.req.end();
  }
  /** The longest gap since the last call, and resets it. */
  takeGap(): number {
    const g = this.maxGapMs;
    this.maxGapMs = 0;
    return g;
  }
  close(): void {
    this.req.destroy();
  }
}

export interface Played {
  status: number;
  /** ms from the request to the first PAT, -1 if none came. */
  patMs: number;
  nullsBeforePat: number;
  body: Buffer;
  json: Json;
}

/**
 * Requests a stream and reads until `realPackets` non-null packets followed a PAT (recovered
 * and playing), or `maxMs` passed, or the server ended the response (an error answer).
 */
export function play(url: string, maxMs: number, realPackets = 500): Promise<Played> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    let size = 0;
    let scanned = 0;
    let patMs = -1;
    let nullsBeforePat = 0;
    let real = 0;
    const req = request(url, { agent: false }, (res) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.destroy();
        const body = Buffer.concat(chunks);
        let json: unknown = null;
        if (String(res.headers['content-type']).includes('json')) json = JSON.parse(body.toString());
        resolve({ status: res.statusCode!, patMs, nullsBeforePat, body, json });
      };
      const timer = setTimeout(finish, maxMs);
      res.on('data', (d: Buffer) => {
        chunks.push(d);
        size += d.length;
        if (res.statusCode !== 200) return;
        const all = chunks.length === 1 ? d : Buffer.concat(chunks);
        for (; scanned + TS <= size; scanned += TS) {
          const pid = ((all[scanned + 1]! & 0x1f) << 8) | all[scanned + 2]!;
          if (patMs < 0) {
            if (pid === 0) patMs = Date.now() - t0;
            else if (pid === NULL_PID) nullsBeforePat++;
          } else if (pid !== NULL_PID) real++;
        }
        if (chunks.length > 1) chunks.splice(0, chunks.length, all);
        if (real >= realPackets) finish();
      });
      res.on('end', finish);
      res.on('error', finish);
      res.on('aborted', finish);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface Bench {
  good: SimHandle;
  bad: SimHandle;
  ace: Acemux;
  viewer: Viewer;
  goodId: string;
}

/**
 * Engines [good, bad]: the good viewer lands on the first (both idle, ties go to the first);
 * every hostile stream then starts on the least loaded one, the bad engine, and a failover
 * takes it to the good one.
 */
export async function setUp(t: Test, badArgs: string[] = [], aceFlags: string[] = []): Promise<Bench> {
  const good = await startSim(['--bitrate', '2000000']);
  const bad = await startSim(['--bitrate', '4000000', ...badArgs]);
  const ace = await startAcemux([good.origin, bad.origin], [...FAST, ...aceFlags]);
  const goodId = contentId(0x600d);
  const viewer = new Viewer(`${ace.origin}/ace/getstream?id=${goodId}`);
  t.teardown(async () => {
    viewer.close();
    await ace.stop();
    await good.stop();
    await bad.stop();
  });
  t.ok(await until(() => viewer.bytes > 100_000, 10_000), 'the good viewer plays');
  const st = await good.stats();
  t.equal(st.sessionsActive, 1, 'the good channel is on the good engine');
  viewer.takeGap();
  return { good, bad, ace, viewer, goodId };
}

export async function events(ace: Acemux, kind?: string): Promise<Array<Record<string, Json>>> {
  const r = await getJson(`${ace.origin}/api/events?limit=500${kind ? `&kind=${kind}` : ''}`);
  return r.body.events ?? [];
}

/** Events of the stream playing `id`, whatever the exact form of acemux's stream key. */
export const ofId = (id: string) => (e: Record<string, unknown>) =>
  typeof e.stream === 'string' && e.stream.toLowerCase().includes(id.toLowerCase());

/**
 * After every case: the process is alive, RSS bounded, the good viewer kept playing without a
 * long silence, and once the hostile stream is gone, the bad engine holds no session and the
 * good one only the good viewer's.
 */
export async function afterCase(t: Test, b: Bench, what: string): Promise<void> {
  const { ace, viewer } = b;
  t.equal(ace.proc.exitCode, null, `${what}: acemux is alive`);
  t.equal(ace.proc.signalCode, null, `${what}: acemux was not killed`);
  const rss = rssMb(ace.proc.pid!);
  t.ok(rss < RSS_LIMIT_MB, `${what}: RSS ${rss.toFixed(0)} MB < ${RSS_LIMIT_MB} MB`);
  const before = viewer.bytes;
  t.ok(await until(() => viewer.bytes > before + 50_000, 5000), `${what}: the good viewer still plays`);
  const gap = viewer.takeGap();
  t.ok(gap < 2000, `${what}: the good viewer was never silent long (longest gap ${gap} ms)`);
  const clean = await until(async () => {
    const [g, x, s] = await Promise.all([b.good.stats(), b.bad.stats(), getJson(`${ace.origin}/ace/status`)]);
    return g.sessionsActive === 1 && x.sessionsActive === 0 && x.playbackActive === 0 && s.body.streams === 1;
  }, 6000);
  t.ok(clean, `${what}: no engine session left behind, only the good stream runs`);
  t.ok(
    ace.logs.every((l) => l.length < 8192),
    `${what}: no log line over 8 KiB`,
  );
}

/** Stall timeout 1.5 s + backoff (≤ 0.8 s) + a new session and first data, with room for a loaded machine. */
const FAILOVER_WITHIN_MS = 7000;

/**
 * One hostile playback case: the id starts on the bad engine with `fault`; the first fault the
 * actor reports must be `kind` (saying `why`), then a reconnect (when it was flowing at first)
 * or straight a failover to the good engine, within a bound; the client plays on.
 */
export async function recovers(
  t: Test,
  b: Bench,
  n: number,
  fault: Record<string, unknown>,
  kind: string,
  why: RegExp,
  what: string,
  reconnectFirst = false,
): Promise<void> {
  const { ace, bad, good } = b;
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
    const moved = await until(async () => (await events(ace, 'failover')).some(ofId(id)), 20_000);
    t.ok(moved, `${what}: a failover came`);
    const at = v.bytes;
    t.ok(await until(() => v.bytes > at + 200_000, 5000), `${what}: the viewer plays on after it`);
    t.ok(v.takeGap() < 2000, `${what}: and was never silent long`);
    v.close();
  }
  const ev = (await events(ace)).filter(ofId(id)).reverse();
  const faults = ev.filter((e) => e.fault === kind);
  t.ok(
    faults.length > 0 && faults.every((e) => why.test(String(e.detail))),
    `${what}: '${kind}' faults say why: ${faults.map((e) => e.detail).join(' | ')}`,
  );
  // The hostile fault comes first. The failover that follows is normally for the same fault;
  // on a loaded machine the reconnected upstream may stall outright first, which is the same
  // policy at work, so any fault may carry it.
  const seq = ev
    .map(
      (e) =>
        `${e.kind}${e.fault ? `/${e.fault}` : ''}${e.action ? `/${e.action}` : ''}${e.engine === bad.origin ? '@bad' : e.engine === good.origin ? '@good' : ''}`,
    )
    .join(' ');
  const first = ev.find((e) => e.fault !== undefined);
  t.equal(first?.fault, kind, `${what}: the first fault is '${kind}' (${seq})`);
  t.equal(
    first?.kind,
    reconnectFirst ? 'reconnect' : 'failover',
    `${what}: ${reconnectFirst ? 'it was flowing, so a reconnect first' : 'never playable, so straight to a failover'}`,
  );
  const fo = ev.find((e) => e.kind === 'failover' && e.action === 'next-engine');
  t.ok(fo, `${what}: the supervisor failed over to the other engine`);
  if (fo) t.ok(fo.time - t0 < FAILOVER_WITHIN_MS + (reconnectFirst ? 4000 : 0), `${what}: within the bound (${fo.time - t0} ms)`);
  const live = ev.filter((e) => e.kind === 'stream-live');
  t.ok(
    live.length > 0 && live.every((e) => reconnectFirst || e.engine === good.origin),
    `${what}: 'live' only where the data was playable (${live.map((e) => e.engine).join(', ')})`,
  );
  const lastFault = [...ev].reverse().find((e) => e.fault !== undefined);
  const st = await getJson(`${ace.origin}/ace/status?id=${id}`);
  if (st.status === 200) t.equal(st.body.last_fault?.fault, lastFault?.fault, `${what}: /ace/status shows the last fault`);
  await afterCase(t, b, what);
}
