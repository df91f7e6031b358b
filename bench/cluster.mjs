#!/usr/bin/env node
// A whole acemux cluster as one "proxy" for the bench harness: N acemux nodes and HAProxy running
// the shipped deploy/haproxy/haproxy.cfg (addresses rewritten to loopback), all children of this
// process, so the harness's process-tree CPU and memory figures cover the cluster, HAProxy
// included. HAProxy binds {port} last, once every node listens, so "the port accepts" means ready.
//
//   node bench/cluster.mjs --nodes 3 --port {port} --engine-port {enginePort}
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    port: { type: 'string' },
    'engine-port': { type: 'string' },
    haproxy: { type: 'string', default: 'haproxy' },
  },
});
const nodes = Number(values.nodes);
if (!(nodes >= 1 && nodes <= 3) || !values.port || !values['engine-port']) {
  console.error('usage: node bench/cluster.mjs --nodes 1..3 --port P --engine-port E [--haproxy path]');
  process.exit(2);
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
const accepts = (port) =>
  new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => (c.destroy(), resolve(true))).once('error', () => resolve(false));
  });

const children = [];
const run = (cmd, args) => {
  const c = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(c);
  c.once('exit', (code, sig) => {
    console.error(`${cmd} exited (${code ?? sig}); stopping the cluster`);
    shutdown(1);
  });
  return c;
};
let stopping = false;
function shutdown(code) {
  if (stopping) return;
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 3000).unref();
  Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null))).then(() => process.exit(code));
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

const ports = [];
for (let i = 0; i < 3; i++) ports.push(await freePort());
for (let i = 0; i < nodes; i++) {
  run(process.execPath, [
    join(ROOT, 'dist/main/cli.js'),
    '--listen',
    `127.0.0.1:${ports[i]}`,
    '--engine',
    `http://127.0.0.1:${values['engine-port']}`,
    '--trusted-proxies',
    '127.0.0.1',
    '--state-dir',
    '',
    '--log-level',
    'warn',
  ]);
}
for (let i = 0; i < nodes; i++) while (!(await accepts(ports[i]))) await new Promise((r) => setTimeout(r, 50));

// The shipped file; servers of nodes not started are dropped (a 1- or 2-node cluster).
let cfg = readFileSync(join(ROOT, 'deploy/haproxy/haproxy.cfg'), 'utf8')
  .replace(/bind :8080\b/, `bind 127.0.0.1:${values.port}`)
  .replace(/bind :8404\b/, `bind 127.0.0.1:${await freePort()}`)
  .replace(/^\s*log stdout.*$/m, '');
for (let i = 0; i < 3; i++)
  cfg =
    i < nodes
      ? cfg.replaceAll(`node${i + 1}:8080`, `127.0.0.1:${ports[i]}`)
      : cfg.replace(new RegExp(`^\\s*server node${i + 1} .*$`, 'gm'), '');
const file = join(mkdtempSync(join(tmpdir(), 'acemux-bench-haproxy-')), 'haproxy.cfg');
writeFileSync(file, cfg);
run(values.haproxy, ['-db', '-f', file]);
