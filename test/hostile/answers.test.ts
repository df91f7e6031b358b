/**
 * A hostile engine's API answers: endless or huge getstream, stat, stop and get_version answers,
 * URLs with schemes other than http(s), and huge error texts. acemux must cap every answer
 * (--engine-max-answer, 64 KiB), refuse what it cannot follow, cut foreign text to 512
 * characters, fail over to the good engine — and after every case stay alive, small, leak no
 * session, and keep the good channel playing.
 */
import t from 'tap';
import { getJson, contentId } from '../helpers/client';
import { startSim } from '../helpers/sim';
import { startAcemux, runCli } from '../helpers/acemux';
import { setUp, afterCase, play, events, until, ofId, Viewer } from './hostile';

t.test('hostile engine answers', async (t) => {
  const b = await setUp(t);
  const { ace, bad } = b;
  const over = /engine answer over 65536 bytes/;

  /** The hostile id starts on the bad engine, fails there with `why`, and plays from the good one. */
  const failsOver = async (n: number, fault: Record<string, unknown>, why: RegExp, what: string) => {
    const id = contentId(n);
    await bad.setFaults({ ids: { [id]: fault } });
    const r = await play(`${ace.origin}/ace/getstream?id=${id}`, 15_000);
    t.equal(r.status, 200, `${what}: the client is answered`);
    t.ok(r.patMs >= 0, `${what}: and plays after the failover (PAT after ${r.patMs} ms)`);
    const ev = (await events(ace, 'failover')).filter(ofId(id));
    t.ok(
      ev.some((e) => why.test(String(e.detail)) && e.action === 'next-engine'),
      `${what}: failover event says why: ${ev.map((e) => e.detail).join(' | ')}`,
    );
    await afterCase(t, b, what);
  };

  await failsOver(0xa1, { getstreamEndless: true }, over, 'endless getstream answer');
  await failsOver(0xa2, { getstreamPadBytes: 50_000_000 }, over, '50 MB getstream answer');
  await failsOver(
    0xa3,
    { playbackUrl: 'file:///etc/passwd' },
    /playback_url with the scheme "file:"; only http and https are followed/,
    'file: playback URL',
  );
  await failsOver(0xa4, { playbackUrl: 'data:video/mp2t;base64,R0AAEA==' }, /playback_url with the scheme "data:"/, 'data: playback URL');
  await failsOver(0xa5, { statUrl: 'file:///etc/shadow' }, /stat_url with the scheme "file:"/, 'file: stat URL');
  await failsOver(0xa6, { playbackUrl: 'gopher://127.0.0.1:70/x' }, /scheme "gopher:"/, 'gopher: playback URL');
  const refused = await bad.stats();
  t.ok(refused.sessionsStopped >= 4, `the sessions behind refused URLs were stopped (${refused.sessionsStopped})`);

  {
    const what = 'endless stat and stop answers';
    const id = contentId(0xa7);
    await bad.setFaults({ ids: { [id]: { statEndless: true, cmdEndless: true } } });
    const v = new Viewer(`${ace.origin}/ace/getstream?id=${id}`);
    const said = await until(async () => {
      const s = await getJson(`${ace.origin}/ace/status?id=${id}`);
      return s.status === 200 && over.test(String(s.body.engine_stat_error)) && s.body.engine === bad.origin;
    }, 8000);
    t.ok(said, `${what}: the capped stat answer shows in /ace/status, and the stream stays on its engine`);
    t.ok(await until(() => v.bytes > 200_000, 5000), `${what}: the stream plays meanwhile (${v.bytes} bytes)`);
    const polled = (await bad.stats()).statRequests;
    t.ok(
      await until(async () => (await bad.stats()).statRequests >= polled + 2, 5000),
      `${what}: stat is polled again after capped answers`,
    );
    v.close();
    // The stop's endless answer is capped too; the engine had already ended the session.
    const stopped = await until(
      async () => (await events(ace, 'stream-stop')).some((e) => ofId(id)(e) && over.test(String(e.engine_said))),
      8000,
    );
    t.ok(stopped, `${what}: stream-stop records the capped stop answer`);
    await afterCase(t, b, what);
  }

  {
    const what = '60 KB error text';
    const id = contentId(0xa8);
    await bad.setFaults({ ids: { [id]: { getstreamError: 'no such channel; ', errorBytes: 60_000 } } });
    const r = await play(`${ace.origin}/ace/getstream?id=${id}`, 10_000);
    t.equal(r.status, 502, `${what}: 502`);
    t.equal(r.json?.code, 'ACEMUX_ERR_ENGINE', `${what}: coded as the engine's refusal`);
    t.match(r.json?.error, /^engine: no such channel; /, `${what}: the engine's words`);
    t.ok(r.body.length < 1024, `${what}: the answer is cut short (${r.body.length} bytes)`);
    const status = await getJson(`${ace.origin}/ace/status`);
    t.ok(JSON.stringify(status.body).length < 64 * 1024, `${what}: /ace/status stays small`);
    const ev = (await events(ace)).filter(ofId(id));
    t.ok(
      ev.length > 0 && ev.every((e) => JSON.stringify(e).length < 2048),
      `${what}: its events are small (${ev.map((e) => JSON.stringify(e).length).join(', ')} bytes)`,
    );
    await afterCase(t, b, what);
  }

  {
    const what = '5 MB error text';
    const id = contentId(0xa9);
    const fault = { getstreamError: 'x', errorBytes: 5_000_000 };
    await bad.setFaults({ ids: { [id]: fault } });
    await b.good.setFaults({ ids: { [id]: fault } });
    const r = await play(`${ace.origin}/ace/getstream?id=${id}`, 15_000);
    t.equal(r.status, 502, `${what}: 502 once every engine failed`);
    t.equal(r.json?.code, 'ACEMUX_ERR_ENGINE_BAD_ANSWER', `${what}: coded as a bad answer`);
    t.match(r.json?.error, over, `${what}: saying the answer was too big`);
    t.ok(r.body.length < 1024, `${what}: a short answer (${r.body.length} bytes)`);
    await afterCase(t, b, what);
  }

  {
    const what = 'endless get_version answer';
    await bad.setFaults({ global: { versionEndless: true } });
    const sick = await until(async () => {
      const e = (await getJson(`${ace.origin}/api/engines`)).body.engines.find((x: { url: string }) => x.url === bad.origin);
      return e && !e.healthy && over.test(String(e.lastError));
    }, 8000);
    t.ok(sick, `${what}: the probe marks the engine unhealthy, saying why`);
    t.ok(
      (await events(ace, 'engine-health')).some((e) => e.engine === bad.origin && over.test(String(e.reason))),
      `${what}: an engine-health event says why`,
    );
    await bad.resetFaults();
    const well = await until(
      async () => (await getJson(`${ace.origin}/api/engines`)).body.engines.every((x: { healthy: boolean }) => x.healthy),
      8000,
    );
    t.ok(well, `${what}: healthy again once it answers properly`);
    await afterCase(t, b, what);
  }
});

t.test('--engine-max-answer / ACEMUX_ENGINE_MAX_ANSWER sets the cap', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const ace = await startAcemux(sim.origin, ['--engine-probe', '0'], { ACEMUX_ENGINE_MAX_ANSWER: '4KiB' });
  t.teardown(async () => {
    await ace.stop();
    await sim.stop();
  });
  const small = contentId(0xc1);
  const padded = contentId(0xc2);
  await sim.setFaults({ ids: { [padded]: { getstreamPadBytes: 8000 } } });
  const ok = await play(`${ace.origin}/ace/getstream?id=${small}`, 10_000, 100);
  t.equal(ok.status, 200, 'a normal answer (under 1 KiB) passes a 4 KiB cap');
  const r = await play(`${ace.origin}/ace/getstream?id=${padded}`, 10_000);
  t.equal(r.status, 502, 'an 8 KB answer does not');
  t.match(r.json?.error, /engine answer over 4096 bytes/, 'saying so');
  const bad = await runCli(['--engine-max-answer', '512']);
  t.equal(bad.code, 2, 'a cap under 1 KiB is a configuration error');
  t.match(bad.stderr + bad.stdout, /--engine-max-answer: must be between 1KiB and 16MiB/);
});
