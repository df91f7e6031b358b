/**
 * Signals (issue 9, defects 8 and 9): SIGHUP reloads the channels file and never ends the
 * process; SIGQUIT and SIGINT drain like SIGTERM; SIGTERM ends every reading viewer with a FIN
 * even while other viewers have stopped reading.
 */
import t from 'tap';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSim } from '../helpers/sim';
import { startAcemux } from '../helpers/acemux';
import { contentId, getJson } from '../helpers/client';
import { play, until } from '../helpers/raw';

interface Viewer {
  s: Socket;
  bytes: number;
  /** Length of the response head, once seen. */
  head: number;
  end: Promise<'fin' | 'reset'>;
}

/** A viewer on a raw socket; a stalled one stops reading after its first bytes. */
function viewer(port: number, id: string, stall: boolean): Viewer {
  const s = connect(port, '127.0.0.1', () => s.write(`GET /ace/getstream?id=${id} HTTP/1.1\r\nHost: x\r\n\r\n`));
  const v: Viewer = {
    s,
    bytes: 0,
    head: -1,
    end: new Promise((resolve) => {
      s.on('end', () => resolve('fin'));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'reset'));
      s.on('close', () => resolve('fin'));
    }),
  };
  let start = '';
  s.on('data', (d: Buffer) => {
    if (v.head < 0) {
      start += d.toString('latin1');
      const i = start.indexOf('\r\n\r\n');
      if (i >= 0) v.head = i + 4;
    }
    v.bytes += d.length;
    if (stall) s.pause();
  });
  return v;
}

const exited = (p: import('node:child_process').ChildProcess) =>
  new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (code) => r(code))));

t.test('SIGTERM ends every reading viewer cleanly while others have stalled', async (t) => {
  const sim = await startSim(['--bitrate', '4000000']);
  // A large lag limit keeps stalled viewers attached (not cut by the egress) until the signal.
  const ace = await startAcemux(sim.origin, [
    '--grace',
    '300ms',
    '--shutdown-timeout',
    '6s',
    '--ring-size',
    '32MiB',
    '--lag-limit',
    '16MiB',
  ]);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const ids = [contentId(0xa1), contentId(0xa2), contentId(0xa3)];
  const reading: Viewer[] = [];
  const stalled: Viewer[] = [];
  for (let i = 0; i < 240; i++) reading.push(viewer(ace.port, ids[i % 3]!, false));
  for (let i = 0; i < 30; i++) stalled.push(viewer(ace.port, ids[i % 3]!, true));
  await until(() => [...reading, ...stalled].every((v) => v.bytes > 0), 20_000, 'every viewer to get bytes');
  // Wait until stalled viewers' socket buffers are full and acemux holds unsent bytes for them.
  const blocked = async () => {
    let n = 0;
    for (const id of ids) {
      const st = (await getJson(`${ace.origin}/ace/status?id=${id}`)).body;
      n += (st.client_list as Array<{ lag_bytes: number }>).filter((c) => c.lag_bytes > 400_000).length;
    }
    return n;
  };
  await until(async () => (await blocked()) >= 10, 40_000, 'stalled viewers with full socket buffers');
  t.ok(
    reading.every((v) => v.bytes > 1_000_000),
    'the readers are well into the stream',
  );
  ace.proc.kill('SIGTERM');
  const ends = await Promise.all(reading.map((v) => v.end));
  const resets = ends.filter((e) => e === 'reset').length;
  t.equal(resets, 0, `every one of ${reading.length} reading viewers saw a clean end (FIN), none a reset`);
  const cut = reading.filter((v) => (v.bytes - v.head) % 188 !== 0).length;
  t.equal(cut, 0, 'and got every byte acemux had for it: each stream ends on a whole TS packet');
  t.equal(await exited(ace.proc), 0, 'exit 0');
  for (const v of stalled) v.s.destroy();
  const st = await sim.stats();
  t.equal(st.sessionsActive, 0, 'every engine session stopped');
});

for (const signal of ['SIGQUIT', 'SIGINT'] as const) {
  t.test(`${signal} drains like SIGTERM`, async (t) => {
    const sim = await startSim(['--bitrate', '1000000']);
    const ace = await startAcemux(sim.origin, ['--grace', '300ms']);
    t.teardown(async () => {
      await ace.stop();
      await sim.stop();
    });
    const ids = [contentId(0xb1), contentId(0xb2), contentId(0xb3)];
    const viewers = ids.map((id) => viewer(ace.port, id, false));
    await until(() => viewers.every((v) => v.bytes > 50_000), 15_000, 'three streams playing');
    t.equal((await sim.stats()).sessionsActive, 3);
    ace.proc.kill(signal);
    t.same(await Promise.all(viewers.map((v) => v.end)), ['fin', 'fin', 'fin'], 'viewers see a clean end');
    t.equal(await exited(ace.proc), 0, 'exit 0, not killed by the signal');
    t.ok(
      ace.logs.some((l) => l.includes('shutting down') && l.includes(signal)),
      'logged',
    );
    const st = await sim.stats();
    t.equal(st.sessionsActive, 0, 'every engine session stopped');
    t.ok(st.stopCommands >= 3, 'with the stop command');
  });
}

t.test('SIGHUP reloads the channels file and never ends the process', async (t) => {
  const sim = await startSim(['--bitrate', '1000000']);
  const file = join(mkdtempSync(join(tmpdir(), 'acemux-hup-')), 'channels.json');
  writeFileSync(file, JSON.stringify({ One: [contentId(0xc1)] }));
  const ace = await startAcemux(sim.origin, ['--grace', '300ms', '--channels', file]);
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  t.equal((await getJson(`${ace.origin}/ace/channel/two`)).status, 404);
  writeFileSync(file, JSON.stringify({ One: [contentId(0xc1)], Two: [contentId(0xc2)] }));
  ace.proc.kill('SIGHUP');
  await until(() => ace.logs.some((l) => l.includes('channels file reloaded')), 5000, 'the reload');
  t.equal((await play(`${ace.origin}/ace/channel/two`, 800)).status, 200, 'the new channel plays');
  writeFileSync(file, '{ not json');
  ace.proc.kill('SIGHUP');
  await until(() => ace.logs.some((l) => l.includes('channels file not reloaded')), 5000, 'the refusal');
  t.equal((await play(`${ace.origin}/ace/channel/two`, 800)).status, 200, 'a bad file keeps the old channels');
  t.equal(ace.proc.exitCode, null, 'still running');
  t.equal((await getJson(`${ace.origin}/livez`)).status, 200);
});
