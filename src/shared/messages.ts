/**
 * Supervision messages between the supervisor (main) and stream actors (workers). Policy lives in
 * the supervisor; actors execute commands and report facts. Bytes never travel here: they go
 * through the ring. Plain structured-clone objects on one MessagePort per actor; the one
 * high-rate message, WAKE, is a bare number so it costs the least to clone.
 */
import type { MessagePort } from 'node:worker_threads';
import type { VideoCodec } from './mpegts/ts-packet';

/** Actor → main: the ring head moved (sent only on the WAKE flag's 0→1 flip). */
export const WAKE = 1;

/** What an actor needs to run; sent once as the piscina task. */
export interface ActorTask {
  streamId: string;
  ring: SharedArrayBuffer;
  port: MessagePort;
  /** Date.now() when the ring was made: the stream clock counts from here. */
  epoch: number;
  batchBytes: number;
  keepaliveMs: number;
  /** A8: hold video this long at most until the audio of its time is whole (0 = off). */
  avHoldMs: number;
  firstDataTimeoutMs: number;
  stallTimeoutMs: number;
  playbackHeadersTimeoutMs: number;
  statIntervalMs: number;
  engineTimeoutMs: number;
  /** Seconds of the measured bitrate the ring should hold: it grows to that (ring.ts I7), 0 = never. */
  ringSeconds?: number;
  /** Cap on one stat_url answer (engine-client C1); engine-client's default when absent. */
  engineMaxAnswerBytes?: number;
  /** Connect right away when the supervisor already has a session (a restart); else wait. */
  connect: ConnectCommand | null;
  /** How many times this stream's actor has been restarted (0 on its first life). */
  life: number;
  /** A port of its own for comlink RPC (ActorApi): plain messages on a comlink port crash it (docs/DESIGN-FACTS.md, fact 6). */
  inspectPort: MessagePort;
}

/** What the actor answers over comlink, on demand (GET /api/streams/<id>/actor). */
export interface ActorApi {
  inspect(): ActorInspection;
}

export interface ActorInspection {
  life: number;
  upstream: {
    connected: boolean;
    playbackUrl: string | null;
    gotData: boolean;
    sinceConnectMs: number | null;
    sinceDataMs: number | null;
    sincePlayableMs: number | null;
    sincePatMs: number | null;
    sincePmtMs: number | null;
  };
  entry: 'wait-pat' | 'hold-to-keyframe' | 'flowing';
  psi: {
    pmtPid: number;
    pcrPid: number;
    videoPid: number;
    videoCodec: VideoCodec | null;
    streams: Array<{ pid: number; streamType: number }>;
  };
  framer: { packets: number; junkBytes: number; resyncs: number };
  ring: { position: number; heldPackets: number; blocked: boolean; touchedBytes: number; capacityBytes: number; maxCapacityBytes: number };
  stats: ActorStats;
}

/** Supervisor → actor. */
export type Command =
  | ConnectCommand
  /** Close the upstream and wait (keepalive goes on) for the next connect. */
  | { type: 'disconnect' }
  | { type: 'stop' };

export interface ConnectCommand {
  type: 'connect';
  playbackUrl: string;
  statUrl: string | null;
  /** A new upstream after a fault: clients resume at a join point with a discontinuity. */
  splice: boolean;
}

/** Why an upstream ended: the supervisor turns this into a retry, failover or give-up. */
export type UpstreamFault =
  | 'connect' // refused, reset, DNS
  | 'headers-timeout' // no response headers in time (prebuffering forever, offline channel)
  | 'status' // non-200 playback answer
  | 'gone' // 403/404/410: the engine session itself is gone
  | 'no-data' // nothing before firstDataTimeoutMs
  | 'stalled' // nothing for stallTimeoutMs once flowing
  | 'unplayable' // bytes, but no playable TS packet for stallTimeoutMs (junk, trickle, no PAT, nulls)
  | 'psi-lost' // flowing, but no PAT or no PMT for stallTimeoutMs: joining players could not start
  | 'ended' // the engine closed the body
  | 'error'; // socket error mid-body

export interface EngineStat {
  status: string;
  peers: number;
  speedDown: number;
  downloaded: number;
}

/** Actor → supervisor. */
export type Report =
  /** The first playable packet (stream-actor A5) of a connection, not its first byte. */
  | { type: 'first-data' }
  | { type: 'upstream-fault'; fault: UpstreamFault; detail: string }
  | { type: 'stat'; stat: EngineStat | null; error?: string };

/** The actor's counters, carried in the ring's stats block (ring.ts), refreshed each tick. */
export interface ActorStats {
  bytesIn: number;
  packets: number;
  junkBytes: number;
  resyncs: number;
  nullPacketsSent: number;
  /** From PCR: bytes between two PCRs over their time difference; 0 until known. */
  bitrate: number;
  videoCodec: VideoCodec | null;
  joinPoints: number;
  blockedMs: number;
}
