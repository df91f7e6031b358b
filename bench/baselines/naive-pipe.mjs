// Reference proxy for the benchmarks: the naive way. One event loop; per channel one engine
// session (getstream format=json with a unique pid, then GET playback_url); every upstream chunk
// is res.write(chunk) to every client of the channel: no ring, no batching, no packet alignment,
// no backpressure handling beyond what write() buffers. Last client gone -> destroy the upstream
// and call command_url?method=stop.
//   node bench/baselines/naive-pipe.mjs --port 8000 --engine-port 6878 [--engine-host 127.0.0.1]

import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: '8000' },
    'engine-port': { type: 'string', default: '6878' },
    'engine-host': { type: 'string', default: '127.0.0.1' },
  },
});
const engine = `${opt['engine-host']}:${opt['engine-port']}`;
/** @typedef {{id: string, clients: Set<http.ServerResponse>, closed?: boolean, upstream?: http.ClientRequest, commandUrl?: string}} Channel */
/** @type {Map<string, Channel>} */
const channels = new Map();
let pidSeq = 0;

/** Engines put their own Host into the URLs they return: point them back at the engine we used. @param {string} u */
const rehost = (u) => Object.assign(new URL(u), { host: engine }).toString();

/** @param {string} url @returns {Promise<any>} */
const getJson = (url) =>
  new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (d) => (body += d))
          .on('end', () => {
            try {
              resolve(JSON.parse(body));
            } catch (err) {
              reject(err);
            }
          });
      })
      .on('error', reject);
  });

/** @param {Channel} ch */
async function openUpstream(ch) {
  const pid = `naive-${process.pid}-${++pidSeq}`;
  const j = await getJson(`http://${engine}/ace/getstream?format=json&id=${ch.id}&pid=${pid}`);
  if (!j.response) throw new Error(`engine: ${j.error}`);
  ch.commandUrl = rehost(j.response.command_url);
  if (ch.closed) return closeChannel(ch); // everyone left meanwhile: just stop the session
  ch.upstream = http.get(rehost(j.response.playback_url), { headers: { 'accept-encoding': 'identity' } }, (up) => {
    up.on('data', (chunk) => {
      for (const res of ch.clients) res.write(chunk);
    });
    up.on('end', () => closeChannel(ch));
  });
  ch.upstream.on('error', () => closeChannel(ch));
}

/** @param {Channel} ch */
function closeChannel(ch) {
  ch.closed = true;
  if (channels.get(ch.id) === ch) channels.delete(ch.id);
  ch.upstream?.destroy();
  for (const res of ch.clients) res.end();
  if (ch.commandUrl) getJson(`${ch.commandUrl}?method=stop`).catch(() => {});
  ch.upstream = ch.commandUrl = undefined; // idempotent
}

http
  .createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const id = url.searchParams.get('id') ?? '';
    if (url.pathname !== '/ace/getstream' || !/^[0-9a-f]{40}$/i.test(id)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'video/mp2t' });
    let ch = channels.get(id);
    if (!ch) {
      channels.set(id, (ch = { id, clients: new Set() }));
      const opening = ch;
      openUpstream(ch).catch((err) => {
        console.error(`channel ${id}: ${err.message}`);
        closeChannel(opening);
      });
    }
    ch.clients.add(res);
    const joined = ch;
    res.on('close', () => {
      joined.clients.delete(res);
      if (joined.clients.size === 0) closeChannel(joined);
    });
  })
  .listen(Number(opt.port), '127.0.0.1', () => console.log(`naive-pipe listening on 127.0.0.1:${opt.port}, engine ${engine}`));
