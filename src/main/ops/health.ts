/**
 * What works less than configured: each degradation is a part (e.g. `journal`) that failed and
 * what failed, shown in /readyz, /ace/status and the dashboard.
 *
 * A degradation costs a feature (event history), not service: /readyz keeps its status (200 with
 * a healthy engine) and only lists it, so a load balancer does not pull a node that still plays
 * every stream. The first failure's time is kept; the reason is the latest one.
 */
export interface Degradation {
  part: string;
  reason: string;
  since: number;
}

export class Health {
  private readonly parts = new Map<string, Degradation>();

  degrade(part: string, reason: string): void {
    const since = this.parts.get(part)?.since ?? Date.now();
    this.parts.set(part, { part, reason, since });
  }

  get degraded(): Degradation[] {
    return [...this.parts.values()];
  }
}
