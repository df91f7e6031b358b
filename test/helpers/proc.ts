/** What the kernel and /metrics say about a running acemux: its RSS, and metric values. */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

/** Resident set size of `pid` in bytes, from /proc/<pid>/status (VmRSS). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** One sample's value from a Prometheus text page, or NaN when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

export function metricsText(origin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request(`${origin}/metrics`, (res) => {
      let body = '';
      res
        .setEncoding('utf8')
        .on('data', (d: string) => (body += d))
        .on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

/** The ring pool's gauges and counters. */
export async function ringCounts(origin: string): Promise<{ inUse: number; idle: number; fresh: number; pooled: number }> {
  const m = await metricsText(origin);
  const v = (name: string, labels: string) => metricValue(m, name, labels) || 0;
  return {
    inUse: v('acemux_rings', 'state="in_use"'),
    idle: v('acemux_rings', 'state="idle"'),
    fresh: v('acemux_ring_takes_total', 'ring="new"'),
    pooled: v('acemux_ring_takes_total', 'ring="pooled"'),
  };
}
