/**
 * The stream actor's per-PID state (stream-actor A5–A8), indexed by PID: 8192 PIDs × 64 bytes =
 * 512 KiB of typed arrays per actor. Indexing by PID keeps the ingest loop free of lookups, but an
 * actor that leaves its arrays to the worker isolate's GC leaves external memory that V8 collects
 * late: stream churn grew RSS by ~30 MB per 500 starts. So tables come from a per-thread pool
 * and go back to it when the actor stops: memory follows the peak number of actors on the thread,
 * not their history.
 */
export const PIDS = 8192;

export class PidTable {
  readonly known = new Uint8Array(PIDS);
  readonly synced = new Uint8Array(PIDS);
  readonly unsynced = new Uint16Array(PIDS);
  readonly open = new Uint8Array(PIDS);
  readonly unitPos = new Int32Array(PIDS);
  readonly unitMs = new Float64Array(PIDS);
  readonly unitLeft = new Int32Array(PIDS);
  readonly unitCc = new Uint8Array(PIDS);
  readonly ccLast = new Int8Array(PIDS).fill(-1);
  readonly ccAdd = new Uint8Array(PIDS);
  readonly lastPts = new Float64Array(PIDS).fill(-1);
  readonly maxBefore = new Float64Array(PIDS).fill(-1);
  readonly maxPts = new Float64Array(PIDS).fill(-1);
  readonly ptsStep = new Float64Array(PIDS);
  readonly endPts = new Float64Array(PIDS).fill(-1);

  /** As new: the next actor must not see the last one's PIDs. */
  reset(): void {
    for (const a of [
      this.known,
      this.synced,
      this.unsynced,
      this.open,
      this.unitPos,
      this.unitMs,
      this.unitLeft,
      this.unitCc,
      this.ccAdd,
      this.ptsStep,
    ])
      a.fill(0);
    for (const a of [this.ccLast, this.lastPts, this.maxBefore, this.maxPts, this.endPts]) a.fill(-1);
  }
}

const free: PidTable[] = [];

export function takePidTable(): PidTable {
  return free.pop() ?? new PidTable();
}

/** The caller must not touch the table afterwards. */
export function releasePidTable(t: PidTable): void {
  t.reset();
  free.push(t);
}
