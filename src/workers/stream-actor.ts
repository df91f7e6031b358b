/**
 * A stream actor: owns one channel's upstream (the engine's playback_url) and is the only writer
 * of its ring. It executes the supervisor's commands (connect, disconnect, stop) and reports facts
 * (first data, upstream faults, stat figures); it decides nothing about retries.
 *
 * Ingest, per upstream chunk (upstream.ts hands out views of a reused read buffer): re-frame into whole 188-byte packets (TsFramer), look at each
 * packet's header only (PSI, keyframe starts, PCR), copy runs of packets into the ring, publish
 * the head (an atomic store). Main polls the heads on its egress clock; the actor pings it only
 * when blocked or when batchBytes are waiting (a burst): a postMessage per chunk cost ~46 µs.
 *
 * Invariants kept here:
 *  A1 After every (re)connect the ring receives nothing from the new upstream before a PAT that is
 *     followed by a keyframe (packets from that PAT are held aside until the keyframe shows), so a
 *     start or splice always lands on a clean join point; after a splice the first PCR-carrying
 *     packet has discontinuity_indicator set.
 *  A2 Join entries are added at the position of a PAT that is followed by a keyframe (or at every
 *     PAT when the PMT names no video), so a joining client starts where a player can.
 *  A3 When the ring refuses packets (a pinned laggard, ring.ts I2) the actor pauses the upstream
 *     and holds what it has; nothing is dropped or overwritten, and keepalive waits too.
 *  A4 Keepalive null packets are written only when no packet has been written for keepaliveMs,
 *     so clients never face silence while the engine prebuffers or recovers.
 *  A5 Health means playable data, not bytes: a playable packet is a whole, non-null TS packet
 *     at or after a PAT of the current connection. 'first-data' is reported at the first one;
 *     bytes with no playable packet for stallTimeoutMs (junk, a 1 byte/s trickle, TS without a
 *     PAT, only null packets) are the fault 'unplayable', and a flowing stream whose playable
 *     packets carried no PAT or no PMT for stallTimeoutMs (joining players could never start) is
 *     'psi-lost'. Playable packets whose media clock (PCR) advances at under MIN_PACE of real
 *     time over stallTimeoutMs are 'unplayable' too (a trickle of real TS). The supervisor
 *     treats these like a stall: reconnect, then fail over.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Dispatcher } from 'undici';
import { engineJson, DEFAULT_MAX_ANSWER } from '../main/engine/engine-client';
import { foreignText } from '../shared/engine-api';
import { Upstream } from './upstream';
import { RingWriter, TS, copyBytes } from '../shared/ring';
import { TsFramer } from '../shared/mpegts/ts-framer';
import { PsiTracker, pidOf, isKeyframeStart, readPcr, setDiscontinuity, fillNullPackets, PAT_PID, NULL_PID } from '../shared/mpegts/ts-packet';
import { parseEnvelope, parseStat } from '../shared/engine-api';
import { WAKE, type ActorTask, type Command, type ConnectCommand, type Report, type UpstreamFault, type ActorStats, type ActorInspection } from '../shared/messages';

const KEEPALIVE_PACKETS = 7; // 1316 bytes: one small write a tick keeps players' read timeouts at bay
const RETRY_BLOCKED_MS = 10;
/** A1's side buffer: one GOP of a high-bitrate stream; past it we give up waiting for a keyframe. */
const HOLD_PACKETS = 8192;
/** Pages of a fresh ring are faulted in ahead of the writer, on the tick, not per chunk. */
const TOUCH_AHEAD = 512 * 1024;
const PAGE = 4096;
/** A5: media delivered at less than this fraction of real time, over a stall window, is a fault. */
const MIN_PACE = 0.5;

/** Where ingest is after a (re)connect (A1). */
const enum Entry {
  WaitPat,
  HoldToKeyframe,
  Flowing,
}

export class StreamActor {
  private readonly ring: RingWriter;
  private readonly port: MessagePort;
  private readonly framer: TsFramer;
  private readonly psi = new PsiTracker();
  private readonly nulls = Buffer.alloc(KEEPALIVE_PACKETS * TS);

  private upstream: Upstream | null = null;
  private connectedAt = 0;
  private gotData = false;
  private lastDataAt = 0;
  // A5, per connection: when bytes first came, when the last playable packet and the last PAT
  // came (0 = not yet), and the framer's packet count then (to say why nothing was playable).
  private firstByteAt = 0;
  private playableAt = 0;
  private patAt = 0;
  private pmtAt = 0;
  private packetsMark = 0;
  private bytesMark = 0;
  private lastWriteAt = 0;
  private entry = Entry.WaitPat;
  private pre: Buffer | null = null;
  /** Bytes of the ring already touched (first lap only; then every page is resident). A pooled
   * ring arrives touched by an earlier stream (ring.ts I6). */
  private touched: number;
  private prePackets = 0;
  private needDiscontinuity = false;
  private patPos = 0;
  private patPending = false;
  private lastJoinMs = -1e9;

  /** Packets the ring refused (A3), oldest first. */
  private held: Buffer[] = [];
  private heldPackets = 0;
  private blockedSince = 0;
  private retryTimer: NodeJS.Timeout | null = null;

  /** Packets published since main was last pinged. */
  private sincePing = 0;
  private tickTimer: NodeJS.Timeout;
  private statTimer: NodeJS.Timeout | null = null;
  private statUrl: string | null = null;
  private statBusy = false;
  private playbackUrl: string | null = null;
  private stopped = false;
  private finish!: () => void;
  readonly done: Promise<void>;

  private readonly stats: ActorStats = { bytesIn: 0, packets: 0, junkBytes: 0, resyncs: 0, nullPacketsSent: 0, bitrate: 0, videoCodec: null, joinPoints: 0, blockedMs: 0 };
  private pcrFirst = -1;
  private pcrBytes = 0;
  // A5's pace check: the newest PCR and when it came, and the start of the current window.
  private pcrLast = -1;
  private pcrLastAt = 0;
  private paceRefPcr = -1;
  private paceRefAt = 0;

  constructor(private readonly task: ActorTask, private readonly agent: Dispatcher) {
    this.ring = new RingWriter(task.ring);
    this.touched = this.ring.touched();
    this.port = task.port;
    this.framer = new TsFramer((src, off, count) => this.ingest(src, off, count));
    fillNullPackets(this.nulls, 0, KEEPALIVE_PACKETS);
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.port.on('message', (m: Command) => this.onCommand(m));
    const tick = Math.max(50, Math.min(task.keepaliveMs || 250, 250));
    this.tickTimer = setInterval(() => this.tick(), tick);
    this.lastWriteAt = this.clock();
    if (task.connect) this.connect(task.connect);
  }

  private clock(): number {
    return Date.now() - this.task.epoch;
  }

  private report(r: Report): void {
    if (!this.stopped) this.port.postMessage(r);
  }

  private onCommand(m: Command): void {
    if (m.type === 'connect') this.connect(m);
    else if (m.type === 'disconnect') this.abortUpstream();
    else if (m.type === 'stop') this.stop();
  }

  // ---- upstream ----

  private connect(cmd: ConnectCommand): void {
    this.abortUpstream();
    this.framer.reset();
    this.entry = Entry.WaitPat;
    this.prePackets = 0;
    this.patPending = false;
    if (cmd.splice) this.needDiscontinuity = true;
    this.gotData = false;
    this.firstByteAt = this.playableAt = this.patAt = this.pmtAt = 0;
    this.pcrLast = this.paceRefPcr = -1;
    this.packetsMark = this.framer.packets;
    this.bytesMark = this.stats.bytesIn;
    this.connectedAt = this.clock();
    this.statUrl = cmd.statUrl;
    this.playbackUrl = cmd.playbackUrl;
    this.scheduleStat();
    // No callback of a closed Upstream ever runs (upstream.ts U2), and every reconnect and stop
    // closes the previous one: these handlers only ever hear from the current connection.
    this.upstream = new Upstream(new URL(cmd.playbackUrl), this.task.playbackHeadersTimeoutMs, {
      onStart: (status) => {
        if (status !== 200) {
          const gone = status === 403 || status === 404 || status === 410;
          this.fault(gone ? 'gone' : 'status', `playback answered HTTP ${status}`);
        }
      },
      onData: (buf, from, to) => this.onData(buf, from, to),
      onEnd: () => this.fault('ended', 'the engine closed the stream'),
      onError: (code, message) => {
        if (code === 'HEADERS_TIMEOUT') this.fault('headers-timeout', 'no playback headers in time');
        else this.fault(this.gotData ? 'error' : 'connect', `${code}: ${message}`);
      },
    });
  }

  private abortUpstream(): void {
    this.upstream?.close();
    this.upstream = null;
    this.connectedAt = 0;
    this.held = [];
    this.heldPackets = 0;
  }

  /** Reports a fault once per connection and drops the upstream; the supervisor decides next. */
  private fault(fault: UpstreamFault, detail: string): void {
    this.abortUpstream();
    this.report({ type: 'upstream-fault', fault, detail });
  }

  private onData(buf: Buffer, from: number, to: number): void {
    const now = this.clock();
    this.lastDataAt = now; // also the clock for everything this read writes: one read of it per read
    this.stats.bytesIn += to - from;
    if (!this.gotData) {
      this.gotData = true;
      this.firstByteAt = now;
    }
    this.framer.push(buf, from, to);
    this.publish(now); // once per read: the framer may hand over several runs
  }

  // ---- ingest (hot path: per packet, header bytes only) ----

  private ingest(src: Uint8Array, off: number, count: number): void {
    if (this.entry !== Entry.Flowing) {
      const used = this.enter(src, off, count);
      off += used * TS;
      count -= used;
      if ((this.entry as Entry) !== Entry.Flowing) return; // enter() moved it, or not yet
    }
    const base = (this.ring.position + this.heldPackets) | 0;
    let playable = 0;
    for (let k = 0; k < count; k++) {
      const p = off + k * TS;
      const pid = pidOf(src, p);
      if (pid !== NULL_PID) playable++;
      if (pid === PAT_PID || pid === this.psi.pmtPid) {
        const kind = this.psi.feed(src, p);
        if (kind === 'pat') {
          this.patAt = this.lastDataAt;
          this.patPos = (base + k) | 0;
          this.patPending = true;
          if (this.psi.version > 0 && this.psi.videoPid < 0) this.addJoin(this.patPos);
        } else if (kind === 'pmt') this.pmtAt = this.lastDataAt;
      } else if (pid === this.psi.videoPid) {
        if (this.patPending && isKeyframeStart(src, p, this.psi.videoCodec)) this.addJoin(this.patPos);
      }
      if (pid === this.psi.pcrPid) this.onPcr(src, p, (base + k) | 0);
    }
    this.stats.packets += count;
    if (playable > 0) this.sawPlayable();
    this.commit(src, off, count);
  }

  /** A5: the clock of playable data; the first playable packet of a connection is 'first-data'. */
  private sawPlayable(): void {
    if (this.playableAt === 0) this.report({ type: 'first-data' });
    this.playableAt = this.lastDataAt || 1; // 0 means "none yet"
    this.packetsMark = this.framer.packets;
    this.bytesMark = this.stats.bytesIn;
  }

  /**
   * A1: skip to a PAT, then hold packets aside until a keyframe (or a PMT without video) proves it
   * a clean join point; a newer PAT restarts the hold. Returns how many packets it consumed.
   */
  private enter(src: Uint8Array, off: number, count: number): number {
    for (let k = 0; k < count; k++) {
      const p = off + k * TS;
      const pid = pidOf(src, p);
      if (this.entry === Entry.WaitPat && pid !== PAT_PID) continue;
      if (pid !== NULL_PID && this.playableAt !== this.lastDataAt) this.sawPlayable();
      let clean = false;
      if (pid === PAT_PID || pid === this.psi.pmtPid) {
        const kind = this.psi.feed(src, p);
        if (kind === 'pat') {
          this.patAt = this.lastDataAt;
          this.entry = Entry.HoldToKeyframe;
          this.prePackets = 0;
        } else if (kind === 'pmt') {
          this.pmtAt = this.lastDataAt;
          clean = this.psi.videoPid < 0;
        }
      } else if (pid === this.psi.videoPid && this.psi.version > 0) {
        clean = isKeyframeStart(src, p, this.psi.videoCodec);
      }
      if (pid === this.psi.pcrPid) this.notePcr(src, p);
      if (clean || this.prePackets === HOLD_PACKETS) {
        // The held run starts with the PAT: that is the join point; this packet follows it. Only
        // now is it known which packets reach the ring (a newer PAT drops the held ones), so the
        // splice is marked here, or by onPcr when the held run carries no PCR.
        const at = (this.ring.position + this.heldPackets) | 0;
        for (let q = 0; q < this.prePackets && this.needDiscontinuity; q++) {
          if (pidOf(this.pre!, q * TS) === this.psi.pcrPid) this.markSplice(this.pre!, q * TS, readPcr(this.pre!, q * TS));
        }
        if (this.prePackets > 0) this.commit(this.pre!, 0, this.prePackets);
        this.stats.packets += this.prePackets;
        this.prePackets = 0;
        this.entry = Entry.Flowing;
        this.patPending = false;
        if (clean) this.addJoin(at);
        return k; // this packet and the rest go through the normal path
      }
      this.pre ??= Buffer.allocUnsafe(HOLD_PACKETS * TS);
      copyBytes.call(src, this.pre, this.prePackets * TS, p, p + TS);
      this.prePackets++;
    }
    return count;
  }

  private addJoin(pos: number): void {
    this.patPending = false;
    const now = this.lastDataAt;
    if (now - this.lastJoinMs < 100 && this.psi.videoPid < 0) return; // PAT-only joins: enough is enough
    this.lastJoinMs = now;
    this.ring.addJoin(pos, now);
    this.stats.joinPoints++;
  }

  /** A1: the first PCR-carrying packet after a splice says so. It is not in the ring yet: mark it
   *  in the source (the held run, or a read buffer that is ours for the length of this call). */
  private markSplice(src: Uint8Array, p: number, pcr: number): void {
    if (pcr < 0) return;
    setDiscontinuity(src, p);
    this.needDiscontinuity = false;
    this.pcrFirst = -1;
  }

  /**
   * A5's media clock, fed from every PCR of the connection (held ones too: a slow upstream may
   * take long to reach a keyframe). A PCR that goes back or leaps (> 1 s; the spec wants one
   * every 100 ms) is a discontinuity: the pace window restarts after it. Returns the PCR or -1.
   */
  private notePcr(src: Uint8Array, p: number): number {
    const pcr = readPcr(src, p);
    if (pcr < 0) return pcr;
    if (this.pcrLast >= 0 && (pcr < this.pcrLast || pcr - this.pcrLast > 27e6)) this.paceRefPcr = -1;
    this.pcrLast = pcr;
    this.pcrLastAt = this.lastDataAt;
    return pcr;
  }

  private onPcr(src: Uint8Array, p: number, pos: number): void {
    const pcr = this.notePcr(src, p);
    if (pcr < 0) return;
    if (this.needDiscontinuity) this.markSplice(src, p, pcr);
    // Bitrate from the media clock, not arrivals (the engine's burst would overstate it).
    if (this.pcrFirst < 0 || pcr < this.pcrFirst || pcr - this.pcrFirst > 27e6 * 10) {
      this.pcrFirst = pcr;
      this.pcrBytes = pos;
      return;
    }
    if (pcr - this.pcrFirst >= 27e6) {
      const bytes = ((pos - this.pcrBytes) | 0) * TS;
      this.stats.bitrate = Math.round((bytes * 8) / ((pcr - this.pcrFirst) / 27e6));
      this.pcrFirst = pcr;
      this.pcrBytes = pos;
    }
  }

  private commit(src: Uint8Array, off: number, count: number): void {
    if (this.heldPackets > 0) return this.hold(src, off, count);
    const n = this.ring.write(src, off, count);
    this.lastWriteAt = this.lastDataAt;
    if (n < count) this.hold(src, off + n * TS, count - n);
  }

  private hold(src: Uint8Array, off: number, count: number): void {
    this.held.push(Buffer.from(src.subarray(off, off + count * TS)));
    this.heldPackets += count;
    if (this.retryTimer === null) {
      this.blockedSince = Date.now();
      this.upstream?.pause();
      this.publish(); // wake main so it can cut the laggard that pins us
      this.retryTimer = setTimeout(() => this.retryHeld(), RETRY_BLOCKED_MS);
    }
  }

  private retryHeld(): void {
    this.retryTimer = null;
    while (this.held.length > 0) {
      const b = this.held[0]!;
      const count = b.length / TS;
      const n = this.ring.write(b, 0, count);
      this.heldPackets -= n;
      if (n < count) {
        this.held[0] = b.subarray(n * TS);
        this.publish();
        this.retryTimer = setTimeout(() => this.retryHeld(), RETRY_BLOCKED_MS);
        return;
      }
      this.held.shift();
    }
    this.stats.blockedMs += Date.now() - this.blockedSince;
    this.lastWriteAt = this.clock();
    this.publish();
    this.upstream?.resume();
  }

  private publish(now = this.clock()): void {
    const moved = this.ring.unpublished();
    const blocked = this.ring.blocked();
    if (moved === 0 && !blocked) return;
    this.sincePing += moved;
    const urgent = blocked || this.sincePing * TS >= this.task.batchBytes;
    if (urgent) this.sincePing = 0;
    if (this.ring.publish(now, urgent)) this.port.postMessage(WAKE);
  }

  // ---- timers: keepalive, watchdog, stat ----

  /**
   * A fresh SAB faults each page in on first write, and faults are slow here (~50 µs a page
   * measured on this VM): touch one byte a page ahead of the writer, from the tick, until the
   * whole ring has been touched once.
   */
  private touchAhead(): void {
    const data = this.ring.data;
    if (this.touched >= data.length) return;
    // Ahead of the writer, not of the last touch: a pooled ring arrives touched as far as its
    // earlier streams wrote, and touching on regardless would fault in pages this stream may
    // never use (RSS would creep up to full rings across a churn of short streams).
    const writer = this.ring.offsetOf(this.ring.position);
    const until = Math.min(data.length, writer + TOUCH_AHEAD);
    if (until <= this.touched) return;
    for (let i = this.touched - (this.touched % PAGE) + PAGE - 1; i < until; i += PAGE) data[i] = data[i]!;
    this.touched = until;
    this.ring.setTouched(until);
  }

  private tick(): void {
    const now = this.clock();
    this.touchAhead();
    this.publishStats();
    if (this.task.keepaliveMs > 0 && this.heldPackets === 0 && now - this.lastWriteAt >= this.task.keepaliveMs) {
      const n = this.ring.write(this.nulls, 0, KEEPALIVE_PACKETS);
      this.stats.nullPacketsSent += n;
      this.lastWriteAt = now;
      this.publish();
    }
    // The watchdog: while an upstream is open, silence past a threshold is a fault. Paused by us
    // (held packets) is not silence.
    if (this.upstream === null || this.heldPackets > 0) {
      this.paceRefPcr = -1; // paused by us: the media clock may lag the wall clock meanwhile
      return;
    }
    if (!this.gotData && now - this.connectedAt > this.task.firstDataTimeoutMs) {
      this.fault('no-data', `no data ${this.task.firstDataTimeoutMs} ms after connecting`);
    } else if (this.gotData && now - this.lastDataAt > this.task.stallTimeoutMs) {
      this.fault('stalled', `no data for ${this.task.stallTimeoutMs} ms`);
    } else if (this.gotData && now - Math.max(this.firstByteAt, this.playableAt) > this.task.stallTimeoutMs) {
      this.fault('unplayable', `nothing playable for ${this.task.stallTimeoutMs} ms: ${this.unplayableWhy()}`);
    } else if (this.entry === Entry.Flowing && this.playableAt - Math.min(this.patAt, this.pmtAt || this.firstByteAt) > this.task.stallTimeoutMs) {
      // Data still plays but has carried no PAT or no PMT for that long (a stream turned all
      // null is 'unplayable' above, whichever of its last PSI and last packet came first).
      const lost = this.playableAt - this.patAt > this.task.stallTimeoutMs ? 'PAT' : 'PMT';
      this.fault('psi-lost', `no ${lost} for ${this.task.stallTimeoutMs} ms: players joining now could not start`);
    } else {
      this.checkPace();
    }
  }

  /**
   * A5: playable packets that come slower than the media plays (a trickle of real TS) starve
   * every player all the same. Over windows of stallTimeoutMs, compare the media clock (PCR)
   * with the wall clock; below MIN_PACE of real time it is 'unplayable'. A PCR going backwards
   * or leaping (a loop, a splice, a wrap) starts a new window (onPcr); no PCR, no verdict.
   */
  private checkPace(): void {
    if (this.pcrLast < 0) return;
    if (this.paceRefPcr < 0) {
      this.paceRefPcr = this.pcrLast;
      this.paceRefAt = this.pcrLastAt;
      return;
    }
    // Wall time up to the newest PCR, not now: when data stops altogether, that is a stall (the
    // check above), not slowness.
    const wall = this.pcrLastAt - this.paceRefAt;
    if (wall < this.task.stallTimeoutMs) return;
    const media = (this.pcrLast - this.paceRefPcr) / 27e3; // ms
    const valid = media >= 0;
    this.paceRefPcr = this.pcrLast;
    this.paceRefAt = this.pcrLastAt;
    if (valid && media < wall * MIN_PACE) {
      this.fault('unplayable', `the media advanced ${Math.round(media)} ms in ${wall} ms (${Math.round((100 * media) / wall)} % of real time): too slow to play`);
    }
  }

  /** A5: why the bytes since the last playable packet (or the connect) were not playable. */
  private unplayableWhy(): string {
    const packets = this.framer.packets - this.packetsMark;
    if (packets === 0) return `${this.stats.bytesIn - this.bytesMark} bytes in, but no whole TS packet (junk, or a trickle)`;
    if (this.patAt === 0) return `${packets} TS packets but no PAT`;
    return `${packets} TS packets, all null`;
  }

  private scheduleStat(): void {
    if (this.statTimer !== null) clearInterval(this.statTimer);
    this.statTimer = null;
    if (this.statUrl && this.task.statIntervalMs > 0) this.statTimer = setInterval(() => void this.pollStat(), this.task.statIntervalMs);
  }

  private async pollStat(): Promise<void> {
    const url = this.statUrl;
    if (!url || this.statBusy) return; // a slow engine gets one poll at a time, not a pile of them
    this.statBusy = true;
    try {
      const body = await engineJson(url, { timeoutMs: this.task.engineTimeoutMs, maxBytes: this.task.engineMaxAnswerBytes ?? DEFAULT_MAX_ANSWER, dispatcher: this.agent });
      const env = parseEnvelope(body);
      if (url !== this.statUrl) return;
      this.report(env.error !== null ? { type: 'stat', stat: null, error: foreignText(env.error) } : { type: 'stat', stat: parseStat(env.response) });
    } catch (e) {
      this.report({ type: 'stat', stat: null, error: foreignText((e as Error).message) });
    } finally {
      this.statBusy = false;
    }
  }

  /** Counters go to main through the ring's stats block, not messages. */
  private publishStats(): void {
    this.stats.junkBytes = this.framer.junkBytes;
    this.stats.resyncs = this.framer.resyncs;
    this.stats.videoCodec = this.psi.videoCodec;
    this.ring.writeStats(this.stats);
  }

  /** Answered over comlink when an operator asks; never on the data path. */
  inspect(): ActorInspection {
    const now = this.clock();
    const entry = this.entry === Entry.WaitPat ? 'wait-pat' : this.entry === Entry.HoldToKeyframe ? 'hold-to-keyframe' : 'flowing';
    this.publishStats();
    return {
      life: this.task.life,
      upstream: {
        connected: this.upstream !== null,
        playbackUrl: this.playbackUrl,
        gotData: this.gotData,
        sinceConnectMs: this.connectedAt ? now - this.connectedAt : null,
        sinceDataMs: this.gotData ? now - this.lastDataAt : null,
        sincePlayableMs: this.playableAt ? now - this.playableAt : null,
        sincePatMs: this.patAt ? now - this.patAt : null,
        sincePmtMs: this.pmtAt ? now - this.pmtAt : null,
      },
      entry,
      psi: { pmtPid: this.psi.pmtPid, pcrPid: this.psi.pcrPid, videoPid: this.psi.videoPid, videoCodec: this.psi.videoCodec, streams: this.psi.streams.map((e) => ({ pid: e.pid, streamType: e.streamType })) },
      framer: { packets: this.framer.packets, junkBytes: this.framer.junkBytes, resyncs: this.framer.resyncs },
      ring: { position: this.ring.position, heldPackets: this.heldPackets, blocked: this.ring.blocked(), touchedBytes: this.touched, capacityBytes: this.ring.data.length },
      stats: { ...this.stats },
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.publish();
    this.stopped = true;
    this.abortUpstream();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.publishStats();
    for (const t of [this.tickTimer, this.statTimer]) if (t) clearInterval(t);
    this.port.close();
    this.finish();
  }
}
