/**
 * Configuration: one table of options, read from CLI flags, ACEMUX_* environment variables and,
 * as aliases, acexy's ACEXY_* names (so acemux drops in where acexy ran). Precedence: flag, then
 * ACEMUX_*, then ACEXY_*, then the default. Every value is validated here; a bad one is a
 * ConfigError naming the option, and the CLI turns that into a non-zero exit.
 *
 * No I/O here: callers pass argv and env.
 */
import { ConfigError } from './errors';
import { ringDataBytes } from '../shared/ring';
import { parseTrustedProxies, type TrustedProxies } from './http/client-address';

export type LagPolicy = 'skip' | 'disconnect';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface Config {
  /** Address the HTTP server binds; host '' means every interface. */
  listenHost: string;
  listenPort: number;
  /** Engine origins, e.g. http://127.0.0.1:6878. */
  engines: string[];
  /** Bound on engine API calls (getstream, stat); engines answer a bad id only after ~4 s. */
  engineTimeoutMs: number;
  /** Bound on the size of one engine API answer (getstream, stat, version, stop). */
  engineMaxAnswerBytes: number;
  /** Bound on playback response headers: engines hold them while prebuffering (8–25 s). */
  playbackHeadersTimeoutMs: number;
  /** No upstream data this long before the first byte: the start failed. */
  firstDataTimeoutMs: number;
  /** No upstream data this long once it flowed: the upstream is stalled. */
  stallTimeoutMs: number;
  /** Bound on command_url?method=stop, which can hang. */
  stopTimeoutMs: number;
  /** How long a stream outlives its last client, so a quick return re-attaches. */
  graceMs: number;
  /** A ring's initial data size in bytes, as used: the asked size rounded down to 2^k 188-byte packets. */
  ringBytes: number;
  /** The most a ring may grow to (ring.ts I7), rounded the same way; at least ringBytes. */
  ringMaxBytes: number;
  /** Seconds of a stream's measured bitrate its ring grows to hold (0 = never grows). */
  ringSeconds: number;
  /** Rings of stopped streams kept for reuse (the rest are dropped). */
  ringPoolIdle: number;
  /** A client further behind the live edge than this is skipped forward or cut. */
  lagLimitBytes: number;
  /** --lag-limit unset: the limit is half the ring as it is now (it grows, ring.ts I7). */
  lagLimitFollowsRing: boolean;
  lagPolicy: LagPolicy;
  /** Joining clients start at the newest clean join point at least this far behind live. */
  joinDelayMs: number;
  /** The actor wakes main at once when this many bytes are waiting (bursts) ... */
  batchBytes: number;
  /** ... otherwise main writes what is new every batchMs (the egress clock). */
  batchMs: number;
  /** Write to a client's socket with write(2) at once when Node has nothing queued on it (egress/socket-sink.ts). */
  directWrites: boolean;
  /** Keepalive: with no upstream data for this long, the actor writes null packets. */
  keepaliveMs: number;
  /** 0 = unlimited. Past it: 503 with Retry-After. */
  maxStreams: number;
  maxClientsPerStream: number;
  maxClients: number;
  /** Stream viewers from one client address (0 = unlimited; see clientAddress()). */
  maxClientsPerIp: number;
  /** Worker threads hosting stream actors. */
  workers: number;
  /** Actors per worker thread before piscina queues (it must never queue a stream). */
  actorsPerWorker: number;
  statIntervalMs: number;
  logLevel: LogLevel;
  /** Answer 200 and start keepalive if the engine has not accepted the session by then. */
  headersWithinMs: number;
  /** Retry backoff: base · 2^(attempt−1), capped, with jitter; give up after retryAttempts. */
  retryBaseMs: number;
  retryCapMs: number;
  retryAttempts: number;
  /** Healthy this long: retry counters, tried ids and engines reset. */
  stablePeriodMs: number;
  /** Cap on session/engine/alternate switches before giving up (reset by a stable period). */
  maxSwitches: number;
  /** How often each engine is probed with get_version (0 = never). */
  engineProbeMs: number;
  /** Clients that have their headers keep getting keepalive this long into an outage before a give-up. */
  giveUpAfterMs: number;
  /** While a retry waits, the engine is probed with get_version this often; an answer retries at once. */
  readyProbeMs: number;
  /** Video is held this long at most until the audio of its time is whole, so a splice can end both together (0 = off). */
  avHoldMs: number;
  /** A client whose socket accepts nothing this long is cut. */
  clientTimeoutMs: number;
  /** Channels file (M3U or JSON) for /ace/channel/<name>; '' = none. */
  channelsFile: string;
  /** Where the event journal lives; '' = no journal. */
  stateDir: string;
  /** When set, /api/ requires it (Bearer or X-API-Key). */
  apiKey: string;
  /** With an API key set: /metrics, respectively /ace/status, stay open without it. */
  publicMetrics: boolean;
  publicStatus: boolean;
  /** When set, stream URLs require ?token=<it>. */
  streamToken: string;
  /** Source M3U (file or URL) that /playlist.m3u rewrites; '' = none. */
  playlist: string;
  /** Base URL for links in /playlist.m3u; '' = from the request's Host. */
  publicUrl: string;
  /** SIGTERM: everything closed within this, or exit anyway. */
  shutdownTimeoutMs: number;
  /** HLS: wanted segment length (segments end at the first GOP boundary past it). */
  hlsSegmentMs: number;
  /** HLS: segments a live playlist lists. */
  hlsWindow: number;
  /** Peers whose X-Forwarded-For is believed (a balancer in front of a cluster); none by default. */
  trustedProxies: TrustedProxies;
  /** SIGTERM: stay unready this long, still serving current viewers, before ending them. */
  drainDelayMs: number;
}

type Kind = 'string' | 'path' | 'int' | 'duration' | 'seconds' | 'size' | 'listen' | 'engines' | 'enum' | 'bool' | 'proxies';

interface Option {
  key: keyof Config | 'listen' | 'engineScheme' | 'engineHost' | 'enginePort';
  flag: string;
  env: string;
  alias?: string;
  kind: Kind;
  values?: readonly string[];
  def: string;
  help: string;
}

/** The whole surface, also the source of --help. Defaults are strings, parsed like user input. */
export const OPTIONS: readonly Option[] = [
  {
    key: 'listen',
    flag: '--listen',
    env: 'ACEMUX_LISTEN',
    alias: 'ACEXY_LISTEN_ADDR',
    kind: 'listen',
    def: ':8080',
    help: 'address to listen on, [host]:port',
  },
  {
    key: 'engines',
    flag: '--engine',
    env: 'ACEMUX_ENGINES',
    kind: 'engines',
    def: '',
    help: 'engine origin(s), comma separated (default from --engine-host/port)',
  },
  {
    key: 'engineScheme',
    flag: '--engine-scheme',
    env: 'ACEMUX_ENGINE_SCHEME',
    alias: 'ACEXY_SCHEME',
    kind: 'enum',
    values: ['http', 'https'],
    def: 'http',
    help: 'engine scheme',
  },
  {
    key: 'engineHost',
    flag: '--engine-host',
    env: 'ACEMUX_ENGINE_HOST',
    alias: 'ACEXY_HOST',
    kind: 'string',
    def: 'localhost',
    help: 'engine host',
  },
  {
    key: 'enginePort',
    flag: '--engine-port',
    env: 'ACEMUX_ENGINE_PORT',
    alias: 'ACEXY_PORT',
    kind: 'int',
    def: '6878',
    help: 'engine port',
  },
  {
    key: 'engineTimeoutMs',
    flag: '--engine-timeout',
    env: 'ACEMUX_ENGINE_TIMEOUT',
    alias: 'ACEXY_NO_RESPONSE_TIMEOUT',
    kind: 'duration',
    def: '30s',
    help: 'bound on engine API answers (getstream); past it 504',
  },
  {
    key: 'engineMaxAnswerBytes',
    flag: '--engine-max-answer',
    env: 'ACEMUX_ENGINE_MAX_ANSWER',
    kind: 'size',
    def: '64KiB',
    help: 'bound on one engine API answer (getstream, stat, version, stop); past it 502',
  },
  {
    key: 'playbackHeadersTimeoutMs',
    flag: '--playback-timeout',
    env: 'ACEMUX_PLAYBACK_TIMEOUT',
    kind: 'duration',
    def: '45s',
    help: 'bound on playback response headers (engines prebuffer first)',
  },
  {
    key: 'firstDataTimeoutMs',
    flag: '--first-data-timeout',
    env: 'ACEMUX_FIRST_DATA_TIMEOUT',
    alias: 'ACEXY_EMPTY_TIMEOUT',
    kind: 'duration',
    def: '30s',
    help: 'no data this long after start: the stream failed',
  },
  {
    key: 'stallTimeoutMs',
    flag: '--stall-timeout',
    env: 'ACEMUX_STALL_TIMEOUT',
    kind: 'duration',
    def: '10s',
    help: 'no data this long once flowing: the upstream stalled',
  },
  {
    key: 'stopTimeoutMs',
    flag: '--stop-timeout',
    env: 'ACEMUX_STOP_TIMEOUT',
    kind: 'duration',
    def: '3s',
    help: 'bound on the engine stop command',
  },
  {
    key: 'graceMs',
    flag: '--grace',
    env: 'ACEMUX_GRACE',
    kind: 'duration',
    def: '5s',
    help: 'keep a stream this long after its last client leaves',
  },
  {
    key: 'ringBytes',
    flag: '--ring-size',
    env: 'ACEMUX_RING_SIZE',
    alias: 'ACEXY_BUFFER_SIZE',
    kind: 'size',
    def: '1.5MiB',
    help: "per-stream ring's initial size (rounded down to 2^k packets: 1.5MiB is 8192 packets, 1.47 MiB)",
  },
  {
    key: 'ringMaxBytes',
    flag: '--ring-max',
    env: 'ACEMUX_RING_MAX',
    kind: 'size',
    def: '12MiB',
    help: 'largest size a ring grows to (2^k packets: 12MiB is 65536 packets, 11.75 MiB; never below --ring-size)',
  },
  {
    key: 'ringSeconds',
    flag: '--ring-seconds',
    env: 'ACEMUX_RING_SECONDS',
    kind: 'seconds',
    def: '3',
    help: "a ring grows to hold this many seconds of its stream's measured bitrate (0 = never grows)",
  },
  {
    key: 'ringPoolIdle',
    flag: '--ring-pool',
    env: 'ACEMUX_RING_POOL',
    kind: 'int',
    def: '16',
    help: "stopped streams' rings kept for reuse",
  },
  {
    key: 'lagLimitBytes',
    flag: '--lag-limit',
    env: 'ACEMUX_LAG_LIMIT',
    kind: 'size',
    def: '0',
    help: 'max client lag before skip/cut (default: half the ring)',
  },
  {
    key: 'lagPolicy',
    flag: '--lag-policy',
    env: 'ACEMUX_LAG_POLICY',
    kind: 'enum',
    values: ['skip', 'disconnect'],
    def: 'skip',
    help: 'what to do with a client past the lag limit',
  },
  {
    key: 'joinDelayMs',
    flag: '--join-delay',
    env: 'ACEMUX_JOIN_DELAY',
    kind: 'duration',
    def: '0',
    help: 'start joining clients this far behind the live edge',
  },
  {
    key: 'batchBytes',
    flag: '--batch-size',
    env: 'ACEMUX_BATCH_SIZE',
    kind: 'size',
    def: '0',
    help: 'wake the egress at once when this many bytes wait (default: 256KiB, at most 1/8 of the ring)',
  },
  {
    key: 'batchMs',
    flag: '--batch-time',
    env: 'ACEMUX_BATCH_TIME',
    kind: 'duration',
    def: '30ms',
    help: 'egress clock: new bytes go out to clients this often',
  },
  {
    key: 'directWrites',
    flag: '--direct-writes',
    env: 'ACEMUX_DIRECT_WRITES',
    kind: 'bool',
    def: 'true',
    help: "write to clients' sockets directly when nothing is queued on them (false: always through Node's streams)",
  },
  {
    key: 'keepaliveMs',
    flag: '--keepalive',
    env: 'ACEMUX_KEEPALIVE',
    kind: 'duration',
    def: '250ms',
    help: 'send null packets when upstream is silent this long (0 = off)',
  },
  {
    key: 'maxStreams',
    flag: '--max-streams',
    env: 'ACEMUX_MAX_STREAMS',
    kind: 'int',
    def: '100',
    help: 'concurrent streams, to protect the engine (0 = unlimited)',
  },
  {
    key: 'maxClientsPerStream',
    flag: '--max-clients-per-stream',
    env: 'ACEMUX_MAX_CLIENTS_PER_STREAM',
    kind: 'int',
    def: '1000',
    help: 'clients of one stream',
  },
  { key: 'maxClients', flag: '--max-clients', env: 'ACEMUX_MAX_CLIENTS', kind: 'int', def: '0', help: 'clients in all (0 = unlimited)' },
  {
    key: 'maxClientsPerIp',
    flag: '--max-clients-per-ip',
    env: 'ACEMUX_MAX_CLIENTS_PER_IP',
    kind: 'int',
    def: '0',
    help: 'stream clients from one address (0 = unlimited: media servers fetch many channels from one address)',
  },
  {
    key: 'workers',
    flag: '--workers',
    env: 'ACEMUX_WORKERS',
    kind: 'int',
    def: '0',
    help: 'actor threads (0 = cores − 1, at least 1, at most 4)',
  },
  {
    key: 'actorsPerWorker',
    flag: '--actors-per-worker',
    env: 'ACEMUX_ACTORS_PER_WORKER',
    kind: 'int',
    def: '256',
    help: 'stream actors one thread may host',
  },
  {
    key: 'statIntervalMs',
    flag: '--stat-interval',
    env: 'ACEMUX_STAT_INTERVAL',
    kind: 'duration',
    def: '5s',
    help: 'how often to poll the engine stat_url (0 = never)',
  },
  {
    key: 'headersWithinMs',
    flag: '--headers-within',
    env: 'ACEMUX_HEADERS_WITHIN',
    kind: 'duration',
    def: '0',
    help: 'send 200 + keepalive if the engine has not accepted by then (0 = wait, bounded by --engine-timeout)',
  },
  {
    key: 'retryBaseMs',
    flag: '--retry-base',
    env: 'ACEMUX_RETRY_BASE',
    kind: 'duration',
    def: '500ms',
    help: 'first retry delay (doubles each attempt, with jitter)',
  },
  { key: 'retryCapMs', flag: '--retry-cap', env: 'ACEMUX_RETRY_CAP', kind: 'duration', def: '10s', help: 'longest retry delay' },
  {
    key: 'retryAttempts',
    flag: '--retry-attempts',
    env: 'ACEMUX_RETRY_ATTEMPTS',
    kind: 'int',
    def: '8',
    help: 'consecutive failed attempts before giving up',
  },
  {
    key: 'stablePeriodMs',
    flag: '--stable-period',
    env: 'ACEMUX_STABLE_PERIOD',
    kind: 'duration',
    def: '30s',
    help: 'healthy this long resets retry and failover counters',
  },
  {
    key: 'maxSwitches',
    flag: '--max-switches',
    env: 'ACEMUX_MAX_SWITCHES',
    kind: 'int',
    def: '6',
    help: 'session/engine/alternate switches before giving up',
  },
  {
    key: 'engineProbeMs',
    flag: '--engine-probe',
    env: 'ACEMUX_ENGINE_PROBE',
    kind: 'duration',
    def: '10s',
    help: 'probe each engine with get_version this often (0 = never)',
  },
  {
    key: 'giveUpAfterMs',
    flag: '--give-up-after',
    env: 'ACEMUX_GIVE_UP_AFTER',
    kind: 'duration',
    def: '5m',
    help: 'keep connected players on keepalive this long into an outage before giving up',
  },
  {
    key: 'readyProbeMs',
    flag: '--ready-probe',
    env: 'ACEMUX_READY_PROBE',
    kind: 'duration',
    def: '250ms',
    help: 'while a retry waits after the engine went away, ask it get_version this often; retry as soon as it answers (0 = off)',
  },
  {
    key: 'avHoldMs',
    flag: '--av-hold',
    env: 'ACEMUX_AV_HOLD',
    kind: 'duration',
    def: '0',
    help: 'hold video up to this long until its audio is whole, so audio and video end together at a splice (adds that much latency; 0 = off)',
  },
  {
    key: 'clientTimeoutMs',
    flag: '--client-timeout',
    env: 'ACEMUX_CLIENT_TIMEOUT',
    kind: 'duration',
    def: '20s',
    help: 'cut a client whose socket accepts nothing this long',
  },
  {
    key: 'channelsFile',
    flag: '--channels',
    env: 'ACEMUX_CHANNELS',
    kind: 'path',
    def: '',
    help: 'channels file (M3U or JSON) with alternate ids, for /ace/channel/<name>',
  },
  {
    key: 'stateDir',
    flag: '--state-dir',
    env: 'ACEMUX_STATE_DIR',
    kind: 'path',
    def: 'acemux-state',
    help: "event journal directory ('' = no journal)",
  },
  {
    key: 'apiKey',
    flag: '--api-key',
    env: 'ACEMUX_API_KEY',
    kind: 'path',
    def: '',
    help: '/api/, /ace/status, /metrics and the dashboard require this key (Authorization: Bearer, X-API-Key)',
  },
  {
    key: 'publicMetrics',
    flag: '--public-metrics',
    env: 'ACEMUX_PUBLIC_METRICS',
    kind: 'bool',
    def: 'false',
    help: '/metrics needs no API key (for Prometheus scrapers without auth)',
  },
  {
    key: 'publicStatus',
    flag: '--public-status',
    env: 'ACEMUX_PUBLIC_STATUS',
    kind: 'bool',
    def: 'false',
    help: "/ace/status needs no API key (acexy's tools)",
  },
  {
    key: 'streamToken',
    flag: '--stream-token',
    env: 'ACEMUX_STREAM_TOKEN',
    kind: 'path',
    def: '',
    help: 'stream URLs require ?token=<this>',
  },
  {
    key: 'playlist',
    flag: '--playlist',
    env: 'ACEMUX_PLAYLIST',
    kind: 'path',
    def: '',
    help: 'source M3U (file or URL) served rewritten at /playlist.m3u',
  },
  {
    key: 'publicUrl',
    flag: '--public-url',
    env: 'ACEMUX_PUBLIC_URL',
    kind: 'path',
    def: '',
    help: "base URL for playlist links (default: the request's Host)",
  },
  {
    key: 'trustedProxies',
    flag: '--trusted-proxies',
    env: 'ACEMUX_TRUSTED_PROXIES',
    kind: 'proxies',
    def: '',
    help: 'IPs/CIDRs (comma separated) whose X-Forwarded-For is trusted, e.g. a load balancer',
  },
  {
    key: 'drainDelayMs',
    flag: '--drain-delay',
    env: 'ACEMUX_DRAIN_DELAY',
    kind: 'duration',
    def: '0',
    help: 'on SIGTERM, answer /readyz 503 this long before ending viewers (a balancer notices)',
  },
  {
    key: 'shutdownTimeoutMs',
    flag: '--shutdown-timeout',
    env: 'ACEMUX_SHUTDOWN_TIMEOUT',
    kind: 'duration',
    def: '8s',
    help: 'bound on graceful shutdown (keep it below the stop timeout: docker 10s, Kubernetes 30s)',
  },
  {
    key: 'hlsSegmentMs',
    flag: '--hls-segment',
    env: 'ACEMUX_HLS_SEGMENT',
    kind: 'duration',
    def: '2s',
    help: 'HLS segment length (cut at the first keyframe past it)',
  },
  { key: 'hlsWindow', flag: '--hls-window', env: 'ACEMUX_HLS_WINDOW', kind: 'int', def: '6', help: 'segments in a live HLS playlist' },
  {
    key: 'logLevel',
    flag: '--log-level',
    env: 'ACEMUX_LOG_LEVEL',
    alias: 'ACEXY_LOG_LEVEL',
    kind: 'enum',
    values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    def: 'info',
    help: 'log level',
  },
];

/**
 * acexy's Go flags, so its command lines run unchanged. Go's flag package takes `-name value`,
 * `-name=value`, `--name value` and `--name=value`; a boolean flag takes no separate value.
 * Each maps to the acemux flag it means; none collides with an acemux flag name.
 */
const ACEXY_FLAGS: Readonly<Record<string, string>> = {
  addr: '--listen',
  scheme: '--engine-scheme',
  'acestream-host': '--engine-host',
  'acestream-port': '--engine-port',
  'no-response-timeout': '--engine-timeout',
  'empty-timeout': '--first-data-timeout',
  'buffer-size': '--ring-size',
};
/** acexy's HLS settings: accepted and validated, with one warning saying what acemux does instead. */
const ACEXY_HLS_FLAG = 'm3u8';
const ACEXY_HLS_TIMEOUT_FLAG = 'm3u8-stream-timeout';

/** Go's strconv.ParseBool, as acexy reads -m3u8 and ACEXY_M3U8. */
function parseGoBool(text: string, name: string): boolean {
  const t = text.trim();
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(t)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(t)) return false;
  throw new ConfigError(`${name}: "${text}" is not a boolean (true or false)`);
}

const HLS_WARNING =
  "acexy's M3U8 (HLS) mode needs no switch in acemux: HLS is always served, made by acemux, at /ace/manifest.m3u8 (and /ace/channel/<name>.m3u8) beside MPEG-TS at /ace/getstream; the flag changes nothing";
const HLS_TIMEOUT_WARNING =
  "acexy's M3U8 stream timeout is ignored: an HLS viewer is gone after 3 target durations without a fetch, and a stream ends --grace (5s) after its last viewer or client";

const UNITS_MS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
const UNITS_B: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  kib: 1024,
  mib: 1 << 20,
  gib: 1 << 30,
};

/** Go-style durations as acexy takes them: "500ms", "5s", "1m30s"; "0" alone means zero. */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0,
    end = 0,
    m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * UNITS_MS[m[2]!]!;
    end = re.lastIndex;
  }
  if (end === 0 || end !== s.length) throw new ConfigError(`"${text}" is not a duration (e.g. 500ms, 5s, 1m30s)`);
  return Math.round(total);
}

/** Seconds: "3", "2.5", or a duration ("3s", "1500ms"). */
export function parseSeconds(text: string): number {
  if (/^\s*\d+(?:\.\d+)?\s*$/.test(text)) return Number(text);
  return parseDuration(text) / 1000;
}

/** Sizes: "65536", "64KiB", "4.2MiB", "4MB" (decimal units are powers of ten). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS_B[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(`"${text}" is not a size (e.g. 65536, 64KiB, 4MiB)`);
  return Math.round(Number(m[1]) * unit);
}

function parseInt10(text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new ConfigError(`"${text}" is not a whole number`);
  return Number(text);
}

/** "[host]:port", ":8080", "8080", "[::1]:8080". */
export function parseListen(text: string): { host: string; port: number } {
  // The host and its colon come together: a bare "8080" is a port, not host "808" and port 0.
  const m = /^(?:(?:\[([^\]]*)\]|([^:]*)):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port < 65536)) throw new ConfigError(`"${text}" is not a listen address ([host]:port)`);
  return { host: m[1] ?? m[2] ?? '', port };
}

export function parseEngines(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        throw new ConfigError(`"${s}" is not an engine URL (e.g. http://127.0.0.1:6878)`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`"${s}": engine URL must be http or https`);
      return u.origin;
    });
}

export function helpText(): string {
  const goFlag = (o: Option) => Object.keys(ACEXY_FLAGS).find((k) => ACEXY_FLAGS[k] === o.flag);
  const rows = OPTIONS.map(
    (o) =>
      `  ${(o.flag + ' <v>').padEnd(30)} ${o.help}${o.def ? ` [${o.def}]` : ''}\n${' '.repeat(33)}env ${o.env}${o.alias ? `, ${o.alias}` : ''}${goFlag(o) ? `; acexy -${goFlag(o)}` : ''}`,
  );
  return `Usage: acemux [options]\n\nA multiplexing AceStream proxy: GET /ace/getstream?id=<40 hex>\n\nOptions (flag, environment):\n${rows.join('\n')}\n  --help                         this text\n\nacexy's -${ACEXY_HLS_FLAG} and -${ACEXY_HLS_TIMEOUT_FLAG} (ACEXY_M3U8, ACEXY_M3U8_STREAM_TIMEOUT) are accepted with a warning: HLS needs no switch (/ace/manifest.m3u8).\n`;
}

/**
 * Reads argv (without node and script) and env into a validated Config. What is accepted but
 * not done as asked (acexy's HLS settings, an ACEXY_* alias overridden by a different ACEMUX_*
 * value) goes to `warn`, once each, for the caller to log.
 */
export function loadConfig(
  argv: readonly string[],
  env: Record<string, string | undefined>,
  warn: (msg: string) => void = () => {},
): Config {
  const flags = new Map<string, string>();
  let hls: { from: string; on: boolean } | null = null;
  let hlsTimeout: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const given = eq > 0 ? a.slice(0, eq) : a;
    const bare = /^--?([a-z0-9-]+)$/.exec(given)?.[1];
    if (bare === ACEXY_HLS_FLAG) {
      hls = { from: given, on: eq > 0 ? parseGoBool(a.slice(eq + 1), given) : true };
      continue;
    }
    const name = bare !== undefined && Object.hasOwn(ACEXY_FLAGS, bare) ? ACEXY_FLAGS[bare]! : given;
    const opt = bare === ACEXY_HLS_TIMEOUT_FLAG ? null : OPTIONS.find((o) => o.flag === name);
    if (!opt && bare !== ACEXY_HLS_TIMEOUT_FLAG) throw new ConfigError(`unknown option ${given} (see --help)`);
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new ConfigError(`${given} needs a value`);
    if (!opt) {
      hlsTimeout = given;
      try {
        parseDuration(value);
      } catch (e) {
        throw new ConfigError(`${given}: ${(e as Error).message}`);
      }
      continue;
    }
    // --engine may repeat: the origins add up.
    flags.set(name, opt.key === 'engines' && flags.has(name) ? `${flags.get(name)},${value}` : value);
  }
  if (!hls && env.ACEXY_M3U8 !== undefined) hls = { from: 'ACEXY_M3U8', on: parseGoBool(env.ACEXY_M3U8, 'ACEXY_M3U8') };
  if (hlsTimeout === null && env.ACEXY_M3U8_STREAM_TIMEOUT !== undefined) {
    hlsTimeout = 'ACEXY_M3U8_STREAM_TIMEOUT';
    try {
      parseDuration(env.ACEXY_M3U8_STREAM_TIMEOUT);
    } catch (e) {
      throw new ConfigError(`${hlsTimeout}: ${(e as Error).message}`);
    }
  }
  if (hls?.on) warn(`${hls.from}: ${HLS_WARNING}`);
  if (hlsTimeout) warn(`${hlsTimeout}: ${HLS_TIMEOUT_WARNING}`);
  const raw: Record<string, unknown> = {};
  for (const o of OPTIONS) {
    const fromFlag = flags.get(o.flag);
    const fromEnv = env[o.env] ?? (o.alias ? env[o.alias] : undefined);
    const source = fromFlag !== undefined ? o.flag : fromEnv !== undefined ? (env[o.env] !== undefined ? o.env : o.alias!) : 'default';
    const text = fromFlag ?? fromEnv ?? o.def;
    try {
      raw[o.key] = convert(o, text);
    } catch (e) {
      throw new ConfigError(`${source === 'default' ? o.flag : source}: ${(e as Error).message}`);
    }
    // A container image may set ACEMUX_* while the user, moving over from acexy, sets the alias.
    const aliasText = o.alias ? env[o.alias] : undefined;
    if (fromFlag === undefined && env[o.env] !== undefined && aliasText !== undefined && differs(o, env[o.env]!, aliasText)) {
      warn(`${o.env}=${env[o.env]} and ${o.alias}=${aliasText} are both set and differ: using ${o.env} (ACEMUX_* wins over acexy's names)`);
    }
  }
  const listen = raw.listen as { host: string; port: number };
  let engines = raw.engines as string[];
  if (engines.length === 0) {
    const port = raw.enginePort as number;
    if (!(port >= 1 && port <= 65535)) throw new ConfigError(`--engine-port: ${port} is not a port`);
    const host = String(raw.engineHost);
    engines = parseEngines(`${raw.engineScheme}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${raw.enginePort}`);
  }
  const asked = raw.ringBytes as number;
  if (!(asked >= 256 * 1024 && asked <= 1 << 30)) throw new ConfigError('--ring-size: must be between 256KiB and 1GiB');
  // Everything downstream (lag limit, checks, status) sees the size really allocated.
  const ringBytes = ringDataBytes(asked);
  const askedMax = raw.ringMaxBytes as number;
  if (!(askedMax >= 256 * 1024 && askedMax <= 1 << 30)) throw new ConfigError('--ring-max: must be between 256KiB and 1GiB');
  const ringMaxBytes = Math.max(ringBytes, ringDataBytes(askedMax));
  const cfg: Config = {
    listenHost: listen.host,
    listenPort: listen.port,
    engines,
    engineTimeoutMs: raw.engineTimeoutMs as number,
    engineMaxAnswerBytes: raw.engineMaxAnswerBytes as number,
    playbackHeadersTimeoutMs: raw.playbackHeadersTimeoutMs as number,
    firstDataTimeoutMs: raw.firstDataTimeoutMs as number,
    stallTimeoutMs: raw.stallTimeoutMs as number,
    stopTimeoutMs: raw.stopTimeoutMs as number,
    graceMs: raw.graceMs as number,
    ringBytes,
    ringMaxBytes,
    ringSeconds: raw.ringSeconds as number,
    ringPoolIdle: raw.ringPoolIdle as number,
    lagLimitBytes: (raw.lagLimitBytes as number) || Math.floor(ringBytes / 2),
    lagLimitFollowsRing: !raw.lagLimitBytes,
    lagPolicy: raw.lagPolicy as LagPolicy,
    joinDelayMs: raw.joinDelayMs as number,
    batchBytes: (raw.batchBytes as number) || Math.min(256 * 1024, Math.floor(ringBytes / 8)),
    batchMs: raw.batchMs as number,
    directWrites: raw.directWrites as boolean,
    keepaliveMs: raw.keepaliveMs as number,
    maxStreams: raw.maxStreams as number,
    maxClientsPerStream: raw.maxClientsPerStream as number,
    maxClients: raw.maxClients as number,
    maxClientsPerIp: raw.maxClientsPerIp as number,
    workers: raw.workers as number,
    actorsPerWorker: raw.actorsPerWorker as number,
    statIntervalMs: raw.statIntervalMs as number,
    logLevel: raw.logLevel as LogLevel,
    headersWithinMs: raw.headersWithinMs as number,
    retryBaseMs: raw.retryBaseMs as number,
    retryCapMs: raw.retryCapMs as number,
    retryAttempts: raw.retryAttempts as number,
    stablePeriodMs: raw.stablePeriodMs as number,
    maxSwitches: raw.maxSwitches as number,
    engineProbeMs: raw.engineProbeMs as number,
    giveUpAfterMs: raw.giveUpAfterMs as number,
    readyProbeMs: raw.readyProbeMs as number,
    avHoldMs: raw.avHoldMs as number,
    clientTimeoutMs: raw.clientTimeoutMs as number,
    channelsFile: raw.channelsFile as string,
    stateDir: raw.stateDir as string,
    apiKey: raw.apiKey as string,
    publicMetrics: raw.publicMetrics as boolean,
    publicStatus: raw.publicStatus as boolean,
    streamToken: raw.streamToken as string,
    playlist: raw.playlist as string,
    publicUrl: (raw.publicUrl as string).replace(/\/+$/, ''),
    shutdownTimeoutMs: raw.shutdownTimeoutMs as number,
    hlsSegmentMs: raw.hlsSegmentMs as number,
    hlsWindow: raw.hlsWindow as number,
    trustedProxies: raw.trustedProxies as TrustedProxies,
    drainDelayMs: raw.drainDelayMs as number,
  };
  check(cfg);
  return cfg;
}

function convert(o: Option, text: string): unknown {
  switch (o.kind) {
    case 'string':
      if (!text.trim()) throw new ConfigError('must not be empty');
      return text.trim();
    case 'path':
      return text.trim();
    case 'int':
      return parseInt10(text);
    case 'duration':
      return parseDuration(text);
    case 'seconds':
      return parseSeconds(text);
    case 'size':
      return parseSize(text);
    case 'listen':
      return parseListen(text);
    case 'engines':
      return parseEngines(text);
    case 'proxies':
      return parseTrustedProxies(text);
    case 'bool': {
      const v = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
      throw new ConfigError(`"${text}" is not true or false`);
    }
    case 'enum':
      if (!o.values!.includes(text.trim().toLowerCase())) throw new ConfigError(`"${text}" is not one of ${o.values!.join(', ')}`);
      return text.trim().toLowerCase();
  }
}

/** True when two texts for one option mean different values (or the alias does not parse). */
function differs(o: Option, a: string, b: string): boolean {
  try {
    return JSON.stringify(convert(o, a)) !== JSON.stringify(convert(o, b));
  } catch {
    return true;
  }
}

/** Cross-field rules: what would make the ring unsafe or a timer meaningless. */
function check(c: Config): void {
  const need = (ok: boolean, msg: string) => {
    if (!ok) throw new ConfigError(msg);
  };
  need(c.ringPoolIdle >= 0 && c.ringPoolIdle <= 4096, '--ring-pool: must be between 0 and 4096');
  need(c.ringSeconds >= 0 && c.ringSeconds <= 600, '--ring-seconds: must be between 0 and 600');
  need(
    c.lagLimitBytes > 0 && c.lagLimitBytes <= c.ringBytes * 0.75,
    '--lag-limit: must be at most 3/4 of the ring, so a laggard is handled before it is overwritten',
  );
  need(c.batchBytes >= 188 && c.batchBytes <= c.ringBytes / 8, '--batch-size: must be between 188 bytes and 1/8 of the ring');
  need(c.batchMs >= 1 && c.batchMs <= 1000, '--batch-time: must be between 1ms and 1s');
  need(c.maxClientsPerStream >= 1 && c.maxClientsPerStream <= 65536, '--max-clients-per-stream: must be between 1 and 65536');
  need(c.engineTimeoutMs > 0, '--engine-timeout: must be above 0');
  need(c.engineMaxAnswerBytes >= 1024 && c.engineMaxAnswerBytes <= 16 << 20, '--engine-max-answer: must be between 1KiB and 16MiB');
  need(c.playbackHeadersTimeoutMs > 0, '--playback-timeout: must be above 0');
  need(c.firstDataTimeoutMs > 0 && c.stallTimeoutMs > 0, 'data timeouts must be above 0');
  need(c.actorsPerWorker >= 1, '--actors-per-worker: must be at least 1');
  need(c.workers <= 64, '--workers: at most 64');
  need(c.retryBaseMs >= 1 && c.retryCapMs >= c.retryBaseMs, '--retry-cap: must be at least --retry-base (which must be above 0)');
  need(c.retryAttempts >= 1, '--retry-attempts: at least 1');
  need(c.clientTimeoutMs >= 1000, '--client-timeout: at least 1s');
  need(c.hlsSegmentMs >= 500 && c.hlsSegmentMs <= 30_000, '--hls-segment: must be between 500ms and 30s');
  need(c.hlsWindow >= 3 && c.hlsWindow <= 100, '--hls-window: must be between 3 and 100 (RFC 8216 6.2.2 wants at least 3 segments)');
  need(c.drainDelayMs < c.shutdownTimeoutMs, '--drain-delay: must be shorter than --shutdown-timeout, which bounds the whole shutdown');
}
