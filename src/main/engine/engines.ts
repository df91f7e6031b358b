/**
 * The engines acemux may use, and what we know of their health: probed with get_version every
 * engineProbeMs; a stream's failure on an engine counts against it too. Facts only — which engine
 * a stream goes to is the supervisor's decision (Supervisor.pickEngine).
 */
import type { EventLog } from '../supervision/events';
import { engineVersion, DEFAULT_MAX_ANSWER } from './engine-client';

export interface EngineState {
  url: string;
  healthy: boolean;
  version?: string;
  lastError?: string;
  lastProbeAt: number;
  failedAt: number;
}

export class EnginePool {
  readonly engines: EngineState[];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    urls: string[],
    private readonly events: EventLog,
    private readonly timeoutMs: number,
    private readonly maxAnswerBytes = DEFAULT_MAX_ANSWER,
  ) {
    // Healthy until shown otherwise: a first request should not wait for a probe.
    this.engines = urls.map((url) => ({ url, healthy: true, lastProbeAt: 0, failedAt: 0 }));
  }

  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get(url: string): EngineState | undefined {
    return this.engines.find((e) => e.url === url);
  }

  anyHealthy(): boolean {
    return this.engines.some((e) => e.healthy);
  }

  /** A stream failed on this engine in a way that points at the engine (unreachable, timeouts). */
  markFailure(url: string, reason: string): void {
    const e = this.get(url);
    if (!e) return;
    e.failedAt = Date.now();
    this.setHealth(e, false, reason);
  }

  markSuccess(url: string): void {
    const e = this.get(url);
    if (e) this.setHealth(e, true);
  }

  async probeAll(): Promise<void> {
    await Promise.all(
      this.engines.map(async (e) => {
        try {
          e.version = await engineVersion(e.url, Math.min(this.timeoutMs, 5000), this.maxAnswerBytes);
          this.setHealth(e, true);
        } catch (err) {
          e.failedAt = Date.now();
          this.setHealth(e, false, (err as Error).message);
        } finally {
          e.lastProbeAt = Date.now();
        }
      }),
    );
  }

  private setHealth(e: EngineState, healthy: boolean, reason?: string): void {
    if (!healthy) e.lastError = reason;
    if (e.healthy === healthy) return;
    e.healthy = healthy;
    this.events.record('engine-health', { engine: e.url, healthy, reason }, healthy ? 'engine healthy' : 'engine unhealthy');
  }
}
