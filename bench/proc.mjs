// CPU time and memory of a process TREE from /proc (Linux). A proxy may fork helpers or run worker
// threads: threads are already inside their process's stat; child processes are found by walking
// the ppid links of every /proc/<pid>/stat.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Fields of /proc/<pid>/stat we need. comm (field 2) may hold spaces and parentheses, so the
 * fields are read after its last ')'. cutime/cstime hold the CPU of children already reaped, so
 * a tree's CPU does not drop when a helper exits.
 * @param {number} pid
 */
export function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { pid, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return null; // gone
  }
}

/** The pid and all its live descendants. @param {number} root */
export function treePids(root) {
  /** @type {Map<number, number[]>} */
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue; // not a digit
    const st = readStat(Number(name));
    if (!st) continue;
    let list = children.get(st.ppid);
    if (!list) children.set(st.ppid, (list = []));
    list.push(st.pid);
  }
  const out = [root];
  for (let k = 0; k < out.length; k++) out.push(...(children.get(out[k]) ?? []));
  return out;
}

/** CPU seconds (user+system, incl. reaped children) of the tree. @param {number} root */
export function treeCpuSeconds(root) {
  let ticks = 0;
  for (const pid of treePids(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / TICKS;
}

/** Summed VmRSS and VmHWM (peak RSS) of the tree, in bytes. @param {number} root */
export function treeMemory(root) {
  let rss = 0,
    hwm = 0;
  for (const pid of treePids(root)) {
    try {
      const s = readFileSync(`/proc/${pid}/status`, 'latin1');
      rss += Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0) * 1024;
      hwm += Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) * 1024;
    } catch {
      /* exited meanwhile */
    }
  }
  return { rss, hwm };
}

/** Samples a tree's memory in the background; keeps the peak of the summed RSS and of the summed VmHWM. */
export class TreeSampler {
  /** @param {number} root @param {number} intervalMs */
  constructor(root, intervalMs = 500) {
    this.root = root;
    this.peakRss = 0;
    this.peakHwm = 0;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }

  sample() {
    const m = treeMemory(this.root);
    this.peakRss = Math.max(this.peakRss, m.rss);
    this.peakHwm = Math.max(this.peakHwm, m.hwm);
    return m;
  }

  stop() {
    clearInterval(this.timer);
    this.sample();
  }
}
