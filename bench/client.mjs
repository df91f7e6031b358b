// Load-client worker process (forked by lib/load.mjs). Holds many raw TCP connections that each
// send `GET <path>` by hand and analyse the MPEG-TS body. Driven over IPC:
//   {t:'open', conns:[{group, port, path, stallAfterMs?, closeAfterMs?}]}
//   {t:'close', group}        close every live connection of a group
//   {t:'mark', id}            start a measurement window (reset window counters) -> {t:'ack', id}
//   {t:'report', id}          -> {t:'report', id, groups, live}
//   {t:'reset', id}           close everything, forget all groups (next scenario) -> {t:'ack', id}
//   {t:'exit'}
// All sockets share one read buffer (net `onread`): reads allocate nothing.

import net from 'node:net';
import { ResponseParser } from './lib/http-response.mjs';
import { GroupStats, TsAnalyzer } from './lib/ts-analyzer.mjs';

const readBuffer = Buffer.allocUnsafe(256 * 1024);
/** @type {Map<string, GroupStats>} */
const groups = new Map();
/** @type {Set<Conn>} */
const live = new Set();
let markGeneration = 0;

const nowUs = () => Number(process.hrtime.bigint()) / 1000;

/** @param {string} name */
function group(name) {
  let g = groups.get(name);
  if (!g) groups.set(name, (g = new GroupStats()));
  return g;
}

class Conn {
  /** @param {{group:string, port:number, path:string, stallAfterMs?:number, closeAfterMs?:number}} spec */
  constructor(spec) {
    this.groupName = spec.group;
    this.g = group(spec.group);
    this.g.opened++;
    this.markGeneration = -1; // set on the next mark: present for the whole window
    this.wanted = true;
    this.timers = /** @type {NodeJS.Timeout[]} */ ([]);
    const start = nowUs();
    this.ts = new TsAnalyzer(this.g, start);
    this.parser = new ResponseParser(
      (status) => {
        if (status !== 200) this.fail(`HTTP ${status}`);
      },
      (buf, s, e) => this.ts.feed(buf, s, e, this.now),
    );
    this.now = start;
    this.socket = net.connect({
      host: '127.0.0.1',
      port: spec.port,
      onread: { buffer: readBuffer, callback: (n, buf) => this.onRead(n, /** @type {Buffer} */ (buf)) },
    });
    this.socket.setNoDelay(true);
    this.socket.on('connect', () => {
      this.socket.write(`GET ${spec.path} HTTP/1.1\r\nHost: 127.0.0.1:${spec.port}\r\nUser-Agent: acemux-bench\r\nAccept: */*\r\n\r\n`);
    });
    this.socket.on('error', (err) => this.fail(err.message));
    this.socket.on('close', () => this.onClose());
    if (spec.stallAfterMs) this.timers.push(setTimeout(() => this.socket.pause(), spec.stallAfterMs));
    if (spec.closeAfterMs) this.timers.push(setTimeout(() => this.close(), spec.closeAfterMs));
    live.add(this);
  }

  /** @param {number} n @param {Buffer} buf */
  onRead(n, buf) {
    this.now = nowUs();
    try {
      this.parser.feed(buf, 0, n);
    } catch (err) {
      this.fail(/** @type {Error} */ (err).message);
    }
    if (this.parser.done && this.wanted) {
      this.g.ended++; // the body ended although a live stream never ends
      this.close();
    }
    return true;
  }

  /** @param {string} message */
  fail(message) {
    if (!this.wanted) return;
    this.g.errors++;
    if (!this.g.errorSample) this.g.errorSample = message;
    this.close();
  }

  close() {
    this.wanted = false;
    this.socket.destroy();
  }

  onClose() {
    if (!live.delete(this)) return;
    for (const t of this.timers) clearTimeout(t);
    if (this.wanted) this.g.ended++; // the server hung up on a client that still wanted data
    this.wanted = false;
    this.ts.finish();
    this.g.closed++;
  }
}

/** @param {string} name */
function groupReport(name) {
  const g = /** @type {GroupStats} */ (groups.get(name));
  let conns = 0,
    waiting = 0,
    minConnBytes = Infinity;
  for (const c of live) {
    if (c.groupName !== name) continue;
    conns++;
    if (c.ts.bytes === 0) waiting++;
    if (c.markGeneration !== markGeneration) continue; // joined during the window
    minConnBytes = Math.min(minConnBytes, c.ts.windowBytes);
  }
  const { fb, lat, ...counters } = g;
  return { ...counters, conns, waiting, minConnBytes: minConnBytes === Infinity ? null : minConnBytes, fb: fb.toJSON(), lat: lat.toJSON() };
}

process.on('message', (/** @type {any} */ msg) => {
  switch (msg.t) {
    case 'open':
      for (const spec of msg.conns) new Conn(spec);
      break;
    case 'close':
      for (const c of live) if (c.groupName === msg.group) c.close();
      break;
    case 'mark':
      markGeneration++;
      for (const g of groups.values()) g.resetWindow();
      for (const c of live) {
        c.ts.windowBytes = 0;
        c.markGeneration = markGeneration;
      }
      process.send?.({ t: 'ack', id: msg.id });
      break;
    case 'report': {
      /** @type {Record<string, any>} */
      const out = {};
      for (const name of groups.keys()) out[name] = groupReport(name);
      process.send?.({ t: 'report', id: msg.id, groups: out, live: live.size });
      break;
    }
    case 'reset':
      for (const c of live) c.close();
      live.clear();
      groups.clear();
      process.send?.({ t: 'ack', id: msg.id });
      break;
    case 'exit':
      for (const c of live) c.close();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 50).unref();
      break;
  }
});
process.on('disconnect', () => process.exit(0)); // parent gone: never outlive it
process.send?.({ t: 'ready' });
