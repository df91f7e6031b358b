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
 *  A5 No truncated unit reaches a client. A unit is what a PUSI packet starts on a PID (a PES,
 *     PSI sections); it is complete when its length is reached (bounded PES, sections) or the
 *     PID's next unit starts. HEAD is published only up to the start of the oldest unit still in
 *     flight, so a unit is published whole or not at all; one in flight longer than HOLD_UNIT_MS
 *     is let go (published as it comes) so a unit that never ends cannot freeze the stream. When
 *     an upstream is abandoned, the packets of the units still in flight are taken out of the
 *     unpublished tail and the complete packets behind them are kept (retract()).
 *  A6 Continuity counters never jump at a splice: each PID's counters from a new upstream are
 *     offset so its first packet follows the last one delivered on that PID (payload packets +1,
 *     packets without payload repeat it). After a (re)connect a PID delivers nothing before its
 *     first unit start, and the video PID nothing before its first keyframe, so every PID
 *     resumes on a whole unit and audio resumes with video, not a GOP ahead of it.
 *  A7 Timestamps continuous across a splice. Players map a timestamp jump as a reset (mpv flushes
 *     its decoders and loses A/V sync), so the new upstream's PTS, DTS and PCR get one offset
 *     (mod 2^33) that shows its first keyframe right after the last picture shown, unless its
 *     decode time would then not follow the last one decoded: then it is decoded right after that
 *     one (decode order never steps back; after an A8 cut, decoded right after the last picture
 *     shown). A leading picture of an open GOP (shown before its keyframe, and missing its
 *     references anyway) may then fall among pictures already shown. Audio resumes on the first
 *     unit that does not overlap the audio already delivered; with one offset for every PID,
 *     audio and video keep their relative timing, so they stay in sync (A11 fills the audio gap).
 *  A8 With avHoldMs > 0, HEAD also stops before the first video unit whose PTS lies past the end
 *     of the whole audio received so far (held at most avHoldMs of arrivals), and an abandoned
 *     upstream's video is cut back to the audio's end (from that unit on, a suffix in decode order,
 *     so nothing kept loses a reference): audio and video then end together at a splice, and skip
 *     the same content. Lip sync no longer needs it (A11); it costs that much latency.
 *  A9 Health means playable data, not bytes: a playable packet is a whole, non-null TS packet
 *     at or after a PAT of the current connection. 'first-data' is reported at the first one;
 *     bytes with no playable packet for stallTimeoutMs (junk, a 1 byte/s trickle, TS without a
 *     PAT, only null packets) are the fault 'unplayable', and a flowing stream whose playable
 *     packets carried no PAT or no PMT for stallTimeoutMs (joining players could never start) is
 *     'psi-lost'. Playable packets whose media clock (PCR) advances at under MIN_PACE of real
 *     time over stallTimeoutMs are 'unplayable' too (a trickle of real TS). The supervisor
 *     treats these like a stall: reconnect, then fail over.
 *  A10 The ring holds ringSeconds of the stream: once the bitrate has been measured over at
 *     least a second of PCR (a stream without PCR: over its first ARRIVAL_WINDOW_MS of
 *     arrivals), the tick grows the ring (ring.ts I7) to the power of two of packets that holds
 *     ringSeconds at that rate, up to its maximum; never shrinks, so a burst that overstated the
 *     rate costs memory, not data. The growth keeps the unpublished tail (A5).
 *  A11 Audio runs on without a hole across a splice, so lip sync holds with no latency added.
 *     The audio delivered before a cut ends short of the video (the mux sends audio after the
 *     video of the same time, and A5 takes back the PES in flight), so under A7's one offset the
 *     new upstream's first audio unit starts after a gap, which players do not fill (mpv played
 *     on 0.2-0.36 s out of sync). For each audio PID whose PMT stream type names a codec
 *     silence.ts can make silent (AAC in ADTS, MPEG audio layer II), audio-track.ts counts the
 *     frames of the PES delivered, so the end of the delivered audio is known (PTS + samples);
 *     before the new upstream's first audio unit go PES of silent frames from that end up to
 *     its PTS: whole frames (a remainder under one stays), counters running on (A6), and
 *     nothing when the gap is over MAX_FILL (a broken timeline). Other codecs (AC-3, E-AC-3,
 *     LATM, AAC with a PCE) keep the gap.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Dispatcher } from 'undici';
import { engineJson, DEFAULT_MAX_ANSWER } from '../main/engine/engine-client';
import { foreignText } from '../shared/engine-api';
import { Upstream } from './upstream';
import { AudioTrack } from './audio-track';
import { audioCodecOf } from './silence';
import { takePidTable, releasePidTable, type PidTable } from './pid-table';
import { takeHold, releaseHold, HOLD_PACKETS } from './hold-pool';
import { RingWriter, TS, copyBytes, ahead } from '../shared/ring';
import { TsFramer } from '../shared/mpegts/ts-framer';
import {
  PsiTracker,
  pidOf,
  isKeyframeStart,
  readPcr,
  setDiscontinuity,
  fillNullPackets,
  PAT_PID,
  NULL_PID,
} from '../shared/mpegts/ts-packet';
import { parseEnvelope, parseStat } from '../shared/engine-api';
import {
  WAKE,
  type ActorTask,
  type Command,
  type ConnectCommand,
  type Report,
  type UpstreamFault,
  type ActorStats,
  type ActorInspection,
} from '../shared/messages';

const KEEPALIVE_PACKETS = 7; // 1316 bytes: one small write a tick keeps players' read timeouts at bay
const RETRY_BLOCKED_MS = 10;
/** Pages of a fresh ring are faulted in ahead of the writer, on the tick, not per chunk. */
const TOUCH_AHEAD = 512 * 1024;
const PAGE = 4096;
/** A10: a stream without PCR is sized by what arrived over this long. */
const ARRIVAL_WINDOW_MS = 2000;
/** A9: media delivered at less than this fraction of real time, over a stall window, is a fault. */
const MIN_PACE = 0.5;
/** A5: a unit in flight longer than this (arrival time) stops holding HEAD back. */
const HOLD_UNIT_MS = 500;
/** A6: a PID that starts no unit in this many payload packets is taken to carry none. */
const UNITLESS_AFTER = 64;

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
  // A9, per connection: when bytes first came, when the last playable packet and the last PAT
  // came (0 = not yet), and the framer's packet count then (to say why nothing was playable).
  private firstByteAt = 0;
  /** bytesIn at this connection's first byte: A10's arrival rate for streams without PCR. */
  private bytesAtFirst = 0;
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

  // A5/A6 per-PID state; `seen` lists the PIDs that have carried data.
  private readonly seen: number[] = [];
  /** A5–A8 state indexed by PID (pid-table.ts), lent by the thread's pool while the actor runs. */
  private readonly pidTable: PidTable = takePidTable();
  private readonly known: Uint8Array;
  /** 1 once the PID delivered its first unit start since the last (re)connect. */
  private readonly synced: Uint8Array;
  /** A6: payload packets dropped per PID while waiting for its first unit start. */
  private readonly unsynced: Uint16Array;
  /** 1 while the PID's current unit is in flight and holds HEAD back (A5). */
  private readonly open: Uint8Array;
  private readonly unitPos: Int32Array;
  private readonly unitMs: Float64Array;
  /** Payload bytes still due in a bounded unit; -1 while unbounded (ends at the next start). */
  private readonly unitLeft: Int32Array;
  /** Outgoing counter of the in-flight unit's first packet. */
  private readonly unitCc: Uint8Array;
  /** Last counter delivered on the PID (-1: none yet) and the offset added to incoming ones (A6). */
  private readonly ccLast: Int8Array;
  private readonly ccAdd: Uint8Array;
  /** A7: the offset added to this upstream's timestamps (90 kHz, mod 2^33). */
  private tsOff = 0;
  private splicing = false;
  /** A7, per PID, output domain: latest unit's PTS, the largest PTS before it and after it, the
   *  smallest step between units, and where the delivered units end after a retraction (-1). */
  private readonly lastPts: Float64Array;
  private readonly maxBefore: Float64Array;
  private readonly maxPts: Float64Array;
  private readonly ptsStep: Float64Array;
  private readonly endPts: Float64Array;
  /** A11: the audio PIDs whose frames we can follow and fill, by PID, for this PMT version. */
  private tracks = new Map<number, AudioTrack>();
  private tracksVersion = -1;
  /** A11: silent packets admit() asks its caller to deliver before the packet it admitted. */
  private fillBuf: Buffer = Buffer.alloc(0);
  /** A8: video units not yet published: [pos, pts (output), arrival ms, outgoing cc] each. */
  private vUnits: number[] = [];
  private vShownMax = -1;
  /** A7, output domain: decode time of the video unit in flight and of the one before it, and
   *  where the video delivered ends in decode time after a retraction (-1 unknown). */
  private vDts = -1;
  private vDtsBefore = -1;
  private dtsEnd = -1;
  /** Join points waiting for HEAD to pass them: [pos, ms] pairs. */
  private pendingJoins: number[] = [];
  private scratch: Buffer = Buffer.alloc(0);

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

  private readonly stats: ActorStats = {
    bytesIn: 0,
    packets: 0,
    junkBytes: 0,
    resyncs: 0,
    nullPacketsSent: 0,
    bitrate: 0,
    videoCodec: null,
    joinPoints: 0,
    blockedMs: 0,
  };
  private pcrFirst = -1;
  private pcrBytes = 0;
  // A9's pace check: the newest PCR and when it came, and the start of the current window.
  private pcrLast = -1;
  private pcrLastAt = 0;
  private paceRefPcr = -1;
  private paceRefAt = 0;

  constructor(
    private readonly task: ActorTask,
    private readonly agent: Dispatcher,
  ) {
    this.ring = new RingWriter(task.ring);
    this.known = this.pidTable.known;
    this.synced = this.pidTable.synced;
    this.unsynced = this.pidTable.unsynced;
    this.open = this.pidTable.open;
    this.unitPos = this.pidTable.unitPos;
    this.unitMs = this.pidTable.unitMs;
    this.unitLeft = this.pidTable.unitLeft;
    this.unitCc = this.pidTable.unitCc;
    this.ccLast = this.pidTable.ccLast;
    this.ccAdd = this.pidTable.ccAdd;
    this.lastPts = this.pidTable.lastPts;
    this.maxBefore = this.pidTable.maxBefore;
    this.maxPts = this.pidTable.maxPts;
    this.ptsStep = this.pidTable.ptsStep;
    this.endPts = this.pidTable.endPts;
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
    for (const pid of this.seen) this.synced[pid] = 0; // A6: every PID restarts on a unit start
    this.unsynced.fill(0);
    this.entry = Entry.WaitPat;
    this.prePackets = 0;
    this.dropHold();
    this.patPending = false;
    if (cmd.splice) this.needDiscontinuity = true;
    this.splicing = cmd.splice;
    this.tsOff = 0;
    this.lastPts.fill(-1);
    this.maxBefore.fill(-1);
    this.maxPts.fill(-1);
    this.vUnits = [];
    this.vShownMax = -1;
    this.vDts = this.vDtsBefore = -1;
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
    this.retract();
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
      this.bytesAtFirst = this.stats.bytesIn;
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
    let pos = (this.ring.position + this.heldPackets) | 0;
    let run = off;
    const end = off + count * TS;
    let playable = 0;
    for (let p = off; p < end; p += TS) {
      const pid = pidOf(src, p);
      if (pid !== NULL_PID) playable++;
      if (pid === PAT_PID || pid === this.psi.pmtPid) {
        const kind = this.psi.feed(src, p);
        if (kind === 'pat') {
          this.patAt = this.lastDataAt;
          this.patPos = pos;
          this.patPending = true;
          if (this.psi.version > 0 && this.psi.videoPid < 0) this.addJoin(this.patPos);
        } else if (kind === 'pmt') this.pmtAt = this.lastDataAt;
      } else if (pid === this.psi.videoPid) {
        if (this.patPending && isKeyframeStart(src, p, this.psi.videoCodec)) this.addJoin(this.patPos);
      }
      const fill = this.admit(src, p, pid, pos);
      if (fill !== 0) {
        if (p > run) this.commit(src, run, (p - run) / TS);
        if (fill < 0) {
          run = p + TS;
          continue;
        }
        this.commit(this.fillBuf, 0, fill); // A11: silence before the packet
        run = p;
        pos = (pos + fill) | 0;
      }
      if (pid === this.psi.pcrPid) this.onPcr(src, p, pos);
      pos = (pos + 1) | 0;
    }
    this.stats.packets += count;
    if (playable > 0) this.sawPlayable();
    if (end > run) this.commit(src, run, (end - run) / TS);
  }

  /**
   * A5/A6 for one packet about to reach the ring at `pos`: -1 drops it (a PID not yet on a
   * unit start since the splice). Rewrites its continuity counter in place (the source is a read
   * buffer or the A1 hold, ours for this call) and tracks the PID's unit in flight. A positive
   * answer is A11's count of silent packets in fillBuf that the caller delivers first (at `pos`;
   * the packet then goes after them); 0 delivers the packet as it is.
   */
  private admit(src: Uint8Array, p: number, pid: number, pos: number): number {
    if (pid === NULL_PID) return 0;
    let filled = 0;
    const b3 = src[p + 3]!;
    const start = (src[p + 1]! & 0x40) !== 0;
    const payload = (b3 & 0x10) !== 0;
    if (this.synced[pid] === 0) {
      // A6: a PID other than video whose payload shows no unit start in UNITLESS_AFTER packets
      // carries no units (private data, a test source): it resumes as it comes, or never would.
      const unitless = !start && payload && pid !== this.psi.videoPid && ++this.unsynced[pid]! >= UNITLESS_AFTER;
      if (!unitless) {
        if (!start || !payload) return -1;
        if (pid === this.psi.videoPid && !isKeyframeStart(src, p, this.psi.videoCodec)) return -1;
        if (this.tsOff !== 0 && pid !== this.psi.videoPid && this.endPts[pid]! >= 0) {
          // A7: not a unit that would mostly replay audio already delivered; where frames are
          // followed (A11), not one that would replay more than half a frame of it (the gap
          // that leaves is filled: the audio's timestamps never step back).
          const pts = pesTs(src, p, 9);
          const slack = this.audioTrack(pid)?.frameTicks() || this.ptsStep[pid]!;
          if (pts >= 0 && ((pts + this.tsOff) % TWO33) + slack / 2 < this.endPts[pid]!) return -1;
        }
      }
      const track = pid === this.psi.videoPid ? undefined : this.audioTrack(pid);
      if (track !== undefined) {
        track.resync();
        if (this.splicing && start && payload) filled = this.fillGap(track, src, p, pid);
      }
      pos = (pos + filled) | 0;
      this.synced[pid] = 1;
      if (this.known[pid] === 0) {
        this.known[pid] = 1;
        this.seen.push(pid);
      }
      const last = this.ccLast[pid]!;
      this.ccAdd[pid] = last < 0 ? 0 : (last + 1 - (b3 & 15)) & 15;
    }
    const cc = ((b3 & 15) + this.ccAdd[pid]!) & 15;
    src[p + 3] = (b3 & 0xf0) | cc;
    this.ccLast[pid] = cc;
    if (this.tsOff !== 0) shiftTimestamps(src, p, this.tsOff);
    if (this.needDiscontinuity && pid === this.psi.pcrPid) this.markSplice(src, p, readPcr(src, p));
    if (!payload) return filled;
    if (pid !== this.psi.videoPid) this.audioTrack(pid)?.packet(src, p);
    const body = (b3 & 0x20) !== 0 ? p + 5 + src[p + 4]! : p + 4;
    const bytes = p + TS - body;
    if (start) {
      this.unitPos[pid] = pos;
      this.unitMs[pid] = this.lastDataAt;
      this.unitCc[pid] = cc;
      const pts = pesTs(src, p, 9);
      if (pts >= 0) {
        const prev = this.lastPts[pid]!;
        const d = Math.abs(pts - prev);
        if (prev >= 0 && d > 0 && d < 90000 && (this.ptsStep[pid] === 0 || d < this.ptsStep[pid]!)) this.ptsStep[pid] = d;
        this.lastPts[pid] = pts;
        this.maxBefore[pid] = this.maxPts[pid]!;
        if (pts > this.maxPts[pid]!) this.maxPts[pid] = pts;
        if (this.task.avHoldMs > 0 && pid === this.psi.videoPid) this.vUnits.push(pos, pts, this.lastDataAt, cc);
        if (pid === this.psi.videoPid) {
          const dts = pesTs(src, p, 14);
          this.vDtsBefore = this.vDts;
          this.vDts = dts >= 0 ? dts : pts;
        }
      }
      const total = unitLength(src, body, p + TS);
      this.unitLeft[pid] = total < 0 ? -1 : total - bytes;
      this.open[pid] = total < 0 || total > bytes ? 1 : 0;
    } else if (this.open[pid] === 1 && this.unitLeft[pid]! >= 0) {
      const left = this.unitLeft[pid]! - bytes;
      this.unitLeft[pid] = left;
      if (left <= 0) this.open[pid] = 0;
    }
    return filled;
  }

  /** A11: the PID's frame tracker when the PMT says it carries audio we can fill, else undefined. */
  private audioTrack(pid: number): AudioTrack | undefined {
    if (this.tracksVersion !== this.psi.version) {
      const next = new Map<number, AudioTrack>();
      for (const e of this.psi.streams) {
        const codec = audioCodecOf(e.streamType);
        if (codec === null || e.pid === this.psi.videoPid) continue;
        const had = this.tracks.get(e.pid);
        next.set(e.pid, had !== undefined && had.codec === codec ? had : new AudioTrack(codec));
      }
      this.tracks = next;
      this.tracksVersion = this.psi.version;
    }
    return this.tracks.get(pid);
  }

  /**
   * A11: the first audio unit of a new upstream, at src[p], resumes after a gap (A7 cut the old
   * upstream's audio short of its video): silent frames into fillBuf from where the audio
   * delivered ends up to this unit's PTS. Sets the PID's last counter past them; returns how many
   * packets they take (0: no gap, or nothing we can fill it with).
   */
  private fillGap(track: AudioTrack, src: Uint8Array, p: number, pid: number): number {
    const pts = pesTs(src, p, 9);
    if (pts < 0 || this.endPts[pid]! < 0 || this.ccLast[pid]! < 0) return 0;
    const fill = track.fill(pid, this.endPts[pid]!, (pts + this.tsOff) % TWO33, this.ccLast[pid]!);
    if (fill === null) return 0;
    this.fillBuf = fill.packets;
    this.ccLast[pid] = fill.cc;
    return fill.count;
  }

  /** A9: the clock of playable data; the first playable packet of a connection is 'first-data'. */
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
        const vEnd = this.endPts[pid]!;
        if (this.splicing && clean && pid === this.psi.videoPid && vEnd >= 0) {
          const pts = pesTs(src, p, 9);
          const dts = pesTs(src, p, 14);
          const v0 = dts >= 0 ? dts : pts;
          if (v0 >= 0) {
            // A7: shown right after the last picture shown, unless its decode time would then not
            // follow the last one decoded: then decoded right after that one. Without the decode
            // time delivered, decoded right after the last picture shown (a reorder delay later).
            let off = vEnd - v0;
            if (this.dtsEnd >= 0 && pts >= 0) {
              const byPts = vEnd - pts;
              const byDts = this.dtsEnd - v0;
              off = signed(byPts - byDts) >= 0 ? byPts : byDts;
            }
            this.tsOff = ((off % TWO33) + TWO33) % TWO33;
          }
        }
        let pos = at;
        let run = 0;
        const pre = this.pre!;
        for (let q = 0; q < this.prePackets; q++) {
          const fill = this.admit(pre, q * TS, pidOf(pre, q * TS), pos);
          if (fill === 0) {
            pos = (pos + 1) | 0;
            continue;
          }
          if (q > run) this.commit(pre, run * TS, q - run);
          if (fill < 0) {
            run = q + 1;
            continue;
          }
          this.commit(this.fillBuf, 0, fill); // A11: silence before the packet
          run = q;
          pos = (pos + fill + 1) | 0;
        }
        if (this.prePackets > run) this.commit(pre, run * TS, this.prePackets - run);
        this.stats.packets += this.prePackets;
        this.prePackets = 0;
        this.dropHold();
        this.entry = Entry.Flowing;
        this.patPending = false;
        if (clean) this.addJoin(at);
        return k; // this packet and the rest go through the normal path
      }
      this.pre ??= takeHold();
      copyBytes.call(src, this.pre, this.prePackets * TS, p, p + TS);
      this.prePackets++;
    }
    return count;
  }

  /** The side buffer back to the thread's pool: the held packets are in the ring or dropped. */
  private dropHold(): void {
    if (this.pre === null) return;
    releaseHold(this.pre);
    this.pre = null;
  }

  private addJoin(pos: number): void {
    this.patPending = false;
    const now = this.lastDataAt;
    if (now - this.lastJoinMs < 100 && this.psi.videoPid < 0) return; // PAT-only joins: enough is enough
    this.lastJoinMs = now;
    this.pendingJoins.push(pos, now); // into the ring once HEAD has passed it (A5)
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
   * A9's media clock, fed from every PCR of the connection (held ones too: a slow upstream may
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
    // Bitrate from the media clock, not arrivals (the engine's burst would overstate it).
    if (this.pcrFirst < 0 || pcr < this.pcrFirst || pcr - this.pcrFirst > 27e6 * 10) {
      this.pcrFirst = pcr;
      this.pcrBytes = pos;
      return;
    }
    // At least a second of PCR: the rate A10 sizes the ring by.
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
    const to = this.publishable();
    const moved = ahead(to, this.ring.head());
    const blocked = this.ring.blocked();
    if (moved <= 0 && !blocked) return;
    this.sincePing += Math.max(0, moved);
    const urgent = blocked || this.sincePing * TS >= this.task.batchBytes;
    if (urgent) this.sincePing = 0;
    const wake = this.ring.publish(now, urgent, to);
    const head = this.ring.head();
    const joins = this.pendingJoins;
    let k = 0;
    while (k < joins.length && ahead(head, joins[k]!) > 0) {
      this.ring.addJoin(joins[k]!, joins[k + 1]!);
      k += 2;
    }
    if (k > 0) joins.splice(0, k);
    const v = this.vUnits;
    let j = 0;
    while (j < v.length && ahead(head, v[j]!) > 0) {
      if (v[j + 1]! > this.vShownMax) this.vShownMax = v[j + 1]!; // published: no longer ours to cut
      j += 4;
    }
    if (j > 0) v.splice(0, j);
    if (wake) this.port.postMessage(WAKE);
  }

  /** A5: the start of the oldest unit in flight (not held past HOLD_UNIT_MS), else everything written. */
  private publishable(): number {
    const pos = this.ring.position;
    let to = pos;
    for (const pid of this.seen) {
      if (this.open[pid] === 0) continue;
      // Measured in arrivals, not wall time: a silent upstream must keep its units held (A5).
      if (this.lastDataAt - this.unitMs[pid]! > HOLD_UNIT_MS) {
        this.open[pid] = 0; // let go: it will be delivered as it comes
        continue;
      }
      if (ahead(this.unitPos[pid]!, to) < 0) to = this.unitPos[pid]!;
    }
    const cut = this.videoPastAudio();
    if (cut >= 0 && this.lastDataAt - this.vUnits[cut + 2]! <= this.task.avHoldMs && ahead(this.vUnits[cut]!, to) < 0)
      to = this.vUnits[cut]!;
    return to;
  }

  /** A8: where the whole audio received so far ends (90 kHz, output), or -1 when unknown. */
  private audioEnd(): number {
    let end = Infinity;
    for (const e of this.psi.streams) {
      const pid = e.pid;
      if (pid === this.psi.videoPid || this.lastPts[pid]! < 0 || this.ptsStep[pid] === 0) continue;
      const t = this.open[pid] === 1 ? this.lastPts[pid]! : this.lastPts[pid]! + this.ptsStep[pid]!;
      if (t < end) end = t;
    }
    return end === Infinity ? -1 : end;
  }

  /** A8: index in vUnits of the first video unit shown after the whole audio ends, or -1. */
  private videoPastAudio(): number {
    if (this.vUnits.length === 0) return -1;
    const end = this.audioEnd();
    if (end < 0) return -1;
    const v = this.vUnits;
    for (let i = 0; i < v.length; i += 4) if (v[i + 1]! >= end) return i;
    return -1;
  }

  /**
   * Rewrites the unpublished tail from the oldest unit in flight: `insert` null packets first
   * (keepalive during a stall, A4), then the tail's packets, without those of units in flight
   * when `dropOpen` (an abandoned upstream, A5). Held packets (A3) are part of the tail.
   */
  private rewriteTail(insert: number, dropOpen: boolean): void {
    let from = this.ring.position;
    for (const pid of this.seen) if (this.open[pid] === 1 && ahead(this.unitPos[pid]!, from) < 0) from = this.unitPos[pid]!;
    const vPid = this.psi.videoPid;
    const vi = dropOpen ? this.videoPastAudio() : -1;
    const vCut = vi >= 0 ? this.vUnits[vi]! : -1;
    if (vCut >= 0 && ahead(vCut, from) < 0) from = vCut;
    const inRing = ahead(this.ring.position, from);
    const total = inRing + this.heldPackets;
    if (total === 0 && insert === 0) return;
    if (this.scratch.length < total * TS) this.scratch = Buffer.alloc(Math.max(total * TS, this.scratch.length * 2));
    const buf = this.scratch;
    this.ring.read(from, inRing, buf, 0);
    let off = inRing * TS;
    for (const h of this.held) off += h.copy(buf, off);
    this.held = [];
    this.heldPackets = 0;
    this.ring.rewind(from);
    if (insert > 0) this.commit(this.nulls, 0, insert);
    const joins = this.pendingJoins;
    for (let k = 0; k < joins.length; k += 2) if (ahead(joins[k]!, from) >= 0) joins[k] = (joins[k]! + insert) | 0;
    const vu = this.vUnits;
    for (let k = 0; k < vu.length; k += 4) if (ahead(vu[k]!, from) >= 0) vu[k] = (vu[k]! + insert) | 0;
    let run = 0;
    for (let q = 0; q < total; q++) {
      const pid = pidOf(buf, q * TS);
      const pos = (from + q) | 0;
      const gone =
        (dropOpen && pid !== NULL_PID && this.open[pid] === 1 && ahead(pos, this.unitPos[pid]!) >= 0) ||
        (vCut >= 0 && pid === vPid && ahead(pos, vCut) >= 0); // A8
      if (!gone) continue;
      if (q > run) this.commit(buf, run * TS, q - run);
      run = q + 1;
    }
    if (total > run) this.commit(buf, run * TS, total - run);
    if (dropOpen) {
      const vOpen = vPid >= 0 && this.open[vPid] === 1;
      for (const pid of this.seen) {
        // A7: where what was delivered on this PID ends (the open unit is not delivered).
        const max = this.open[pid] === 1 ? this.maxBefore[pid]! : this.maxPts[pid]!;
        if (max >= 0 && this.ptsStep[pid]! > 0) this.endPts[pid] = max + this.ptsStep[pid]!;
        const end = this.tracks.get(pid)?.retract(this.open[pid] === 1) ?? -1;
        if (end >= 0) this.endPts[pid] = end; // A11: counted frames, not the step between units
        if (this.open[pid] === 0) continue;
        this.open[pid] = 0;
        this.ccLast[pid] = (this.unitCc[pid]! + 15) & 15; // the packet before the unit's start (A6)
      }
      if (vi >= 0) {
        // A8: the video now ends where the kept audio does; its counter resumes before the cut.
        this.ccLast[vPid] = (this.vUnits[vi + 3]! + 15) & 15;
        let max = this.vShownMax;
        for (let i = 0; i < vi; i += 4) if (this.vUnits[i + 1]! > max) max = this.vUnits[i + 1]!;
        if (max >= 0) this.endPts[vPid] = max + this.ptsStep[vPid]!;
        this.dtsEnd = -1; // A8 cut in presentation order: decode times are not followed
      } else if (vPid >= 0) {
        const last = vOpen ? this.vDtsBefore : this.vDts;
        if (last >= 0 && this.ptsStep[vPid]! > 0) this.dtsEnd = last + this.ptsStep[vPid]!;
      }
      this.vUnits = [];
      // Join points past `from` name packets that moved or went: a new splice brings its own.
      for (let k = 0; k < joins.length; k += 2) {
        if (ahead(joins[k]!, from) >= 0) {
          joins.length = k;
          break;
        }
      }
      this.patPending = false;
    } else {
      for (const pid of this.seen) if (this.open[pid] === 1) this.unitPos[pid] = (this.unitPos[pid]! + insert) | 0;
    }
  }

  /** A5: an upstream is over; what it left unfinished never reaches a client. */
  private retract(): void {
    this.rewriteTail(0, true);
  }

  // ---- timers: keepalive, watchdog, stat ----

  /**
   * A fresh SAB faults each page in on first write, and faults are slow here (~50 µs a page
   * measured on this VM): touch one byte a page ahead of the writer, from the tick, until the
   * whole ring has been touched once.
   */
  private touchAhead(): void {
    const data = this.ring.data;
    // Only the capacity in use: the rest of the SAB stays unresident until a growth (ring.ts I7).
    const size = this.ring.cap * TS;
    if (this.touched >= size) return;
    // Ahead of the writer, not of the last touch: a pooled ring arrives touched as far as its
    // earlier streams wrote, and touching on regardless would fault in pages this stream may
    // never use (RSS would creep up to full rings across a churn of short streams).
    const writer = this.ring.offsetOf(this.ring.position);
    const until = Math.min(size, writer + TOUCH_AHEAD);
    if (until <= this.touched) return;
    for (let i = this.touched - (this.touched % PAGE) + PAGE - 1; i < until; i += PAGE) data[i] = data[i]!;
    this.touched = until;
    this.ring.setTouched(until);
  }

  /** A10: on the tick, so no ingest loop is between a slot computation and its use. */
  private growRing(): void {
    const seconds = this.task.ringSeconds ?? 0;
    if (seconds <= 0 || this.ring.cap >= this.ring.maxCap) return;
    let bps = this.stats.bitrate;
    if (bps <= 0 && this.pcrLast < 0 && this.firstByteAt > 0) {
      // No PCR seen: without a media clock, arrivals are the only measure of the rate. (A
      // stream whose PCR is still being measured waits for it.)
      const ms = this.clock() - this.firstByteAt;
      if (ms >= ARRIVAL_WINDOW_MS) bps = ((this.stats.bytesIn - this.bytesAtFirst) * 8000) / ms;
    }
    if (bps <= 0) return;
    const want = Math.ceil((seconds * bps) / 8 / TS);
    if (want > this.ring.cap) this.ring.grow(want); // refused while a pre-growth pin holds: next tick
  }

  private tick(): void {
    const now = this.clock();
    this.growRing();
    this.touchAhead();
    this.publishStats();
    if (this.task.keepaliveMs > 0 && this.heldPackets === 0 && now - this.lastWriteAt >= this.task.keepaliveMs) {
      const tail = ahead(this.ring.position, this.publishable());
      if (tail === 0) {
        this.stats.nullPacketsSent += this.ring.write(this.nulls, 0, KEEPALIVE_PACKETS);
      } else if (this.ring.room() >= KEEPALIVE_PACKETS) {
        // Units in flight hold HEAD back (A5): the nulls go in before them, or clients would
        // hear nothing while the upstream is silent.
        this.rewriteTail(KEEPALIVE_PACKETS, false);
        this.stats.nullPacketsSent += KEEPALIVE_PACKETS;
      }
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
    } else if (
      this.entry === Entry.Flowing &&
      this.playableAt - Math.min(this.patAt, this.pmtAt || this.firstByteAt) > this.task.stallTimeoutMs
    ) {
      // Data still plays but has carried no PAT or no PMT for that long (a stream turned all
      // null is 'unplayable' above, whichever of its last PSI and last packet came first).
      const lost = this.playableAt - this.patAt > this.task.stallTimeoutMs ? 'PAT' : 'PMT';
      this.fault('psi-lost', `no ${lost} for ${this.task.stallTimeoutMs} ms: players joining now could not start`);
    } else {
      this.checkPace();
    }
  }

  /**
   * A9: playable packets that come slower than the media plays (a trickle of real TS) starve
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
      this.fault(
        'unplayable',
        `the media advanced ${Math.round(media)} ms in ${wall} ms (${Math.round((100 * media) / wall)} % of real time): too slow to play`,
      );
    }
  }

  /** A9: why the bytes since the last playable packet (or the connect) were not playable. */
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
      const body = await engineJson(url, {
        timeoutMs: this.task.engineTimeoutMs,
        maxBytes: this.task.engineMaxAnswerBytes ?? DEFAULT_MAX_ANSWER,
        dispatcher: this.agent,
      });
      const env = parseEnvelope(body);
      if (url !== this.statUrl) return;
      this.report(
        env.error !== null ? { type: 'stat', stat: null, error: foreignText(env.error) } : { type: 'stat', stat: parseStat(env.response) },
      );
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
      psi: {
        pmtPid: this.psi.pmtPid,
        pcrPid: this.psi.pcrPid,
        videoPid: this.psi.videoPid,
        videoCodec: this.psi.videoCodec,
        streams: this.psi.streams.map((e) => ({ pid: e.pid, streamType: e.streamType })),
      },
      framer: { packets: this.framer.packets, junkBytes: this.framer.junkBytes, resyncs: this.framer.resyncs },
      ring: {
        position: this.ring.position,
        heldPackets: this.heldPackets,
        blocked: this.ring.blocked(),
        touchedBytes: this.touched,
        capacityBytes: this.ring.cap * TS,
        maxCapacityBytes: this.ring.maxCap * TS,
      },
      stats: { ...this.stats },
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.abortUpstream(); // A5: units in flight are taken back first
    this.publish();
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.publishStats();
    for (const t of [this.tickTimer, this.statTimer]) if (t) clearInterval(t);
    this.port.close();
    this.dropHold();
    releasePidTable(this.pidTable);
    this.finish();
  }
}

const TWO33 = 2 ** 33;

/** A difference of 90 kHz timestamps mod 2^33, as the nearest signed value. */
function signed(d: number): number {
  const m = ((d % TWO33) + TWO33) % TWO33;
  return m >= TWO33 / 2 ? m - TWO33 : m;
}

/** Payload start of packet p (no bounds check beyond the packet: callers test the result). */
function bodyOf(src: Uint8Array, p: number): number {
  return (src[p + 3]! & 0x20) !== 0 ? p + 5 + src[p + 4]! : p + 4;
}

/** A PES timestamp (PTS at +9, DTS at +14 of the PES header) in packet p, or -1. */
function pesTs(src: Uint8Array, p: number, at: 9 | 14): number {
  if ((src[p + 1]! & 0x40) === 0) return -1;
  const b = bodyOf(src, p);
  if (b + 19 > p + TS || src[b] !== 0 || src[b + 1] !== 0 || src[b + 2] !== 1) return -1;
  const flags = src[b + 7]! >> 6;
  if ((at === 9 && (flags & 2) === 0) || (at === 14 && flags !== 3)) return -1;
  const q = b + at;
  return ((src[q]! >> 1) & 7) * 2 ** 30 + src[q + 1]! * 2 ** 22 + (src[q + 2]! >> 1) * 2 ** 15 + src[q + 3]! * 2 ** 7 + (src[q + 4]! >> 1);
}

function writeTs(src: Uint8Array, q: number, v: number): void {
  src[q] = (src[q]! & 0xf1) | ((Math.floor(v / 2 ** 30) & 7) << 1);
  src[q + 1] = Math.floor(v / 2 ** 22) & 0xff;
  src[q + 2] = ((Math.floor(v / 2 ** 15) & 0x7f) << 1) | 1;
  src[q + 3] = Math.floor(v / 2 ** 7) & 0xff;
  src[q + 4] = ((v % 128) << 1) | 1;
}

/** A7: adds `off` (90 kHz, mod 2^33) to the packet's PCR base, PTS and DTS, in place. */
function shiftTimestamps(src: Uint8Array, p: number, off: number): void {
  if ((src[p + 3]! & 0x20) !== 0 && src[p + 4]! >= 7 && (src[p + 5]! & 0x10) !== 0) {
    const q = p + 6;
    const base = src[q]! * 2 ** 25 + src[q + 1]! * 2 ** 17 + src[q + 2]! * 2 ** 9 + src[q + 3]! * 2 + (src[q + 4]! >> 7);
    const v = (base + off) % TWO33;
    src[q] = Math.floor(v / 2 ** 25) & 0xff;
    src[q + 1] = Math.floor(v / 2 ** 17) & 0xff;
    src[q + 2] = Math.floor(v / 2 ** 9) & 0xff;
    src[q + 3] = Math.floor(v / 2) & 0xff;
    src[q + 4] = ((v % 2) << 7) | (src[q + 4]! & 0x7f);
  }
  for (const at of [9, 14] as const) {
    const t = pesTs(src, p, at);
    if (t >= 0) writeTs(src, bodyOf(src, p) + at, (t + off) % TWO33);
  }
}

/**
 * Bytes of payload a unit starting at body[0] will carry in all, or -1 when unbounded: a PES
 * with PES_packet_length 0 (video) ends where the next one starts. A PES counts its 6-byte
 * header; PSI counts the pointer field, what it skips, and the first section.
 */
function unitLength(src: Uint8Array, body: number, end: number): number {
  if (body + 6 > end) return -1;
  if (src[body] === 0 && src[body + 1] === 0 && src[body + 2] === 1) {
    const len = (src[body + 4]! << 8) | src[body + 5]!;
    return len === 0 ? -1 : len + 6;
  }
  const s = body + 1 + src[body]!;
  if (s + 3 > end) return -1;
  return s + 3 + (((src[s + 1]! & 0x0f) << 8) | src[s + 2]!) - body;
}
