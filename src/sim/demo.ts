/**
 * `npm run demo`: acemux in front of the built-in engine simulator, no AceStream engine needed.
 * Starts both, checks that what acemux serves decodes (ffprobe, when installed), prints URLs
 * to open in ffplay, VLC or mpv, and runs until Ctrl-C. `--once` exits after the check (tests).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { startEngineSim } from './engine-sim';

const CHANNELS = ['0123456789abcdef0123456789abcdef01234567', 'fedcba9876543210fedcba9876543210fedcba98'];

function grab(url: string, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const req = request(url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`acemux answered ${res.statusCode}`));
      res.on('data', (d: Buffer) => parts.push(d));
    });
    req.on('error', reject);
    req.end();
    setTimeout(() => {
      req.destroy();
      resolve(Buffer.concat(parts));
    }, ms);
  });
}

/**
 * The proxy runs as its own process, exactly as `npm start` runs it: the demo depends on the
 * product's command line, never on its modules. Resolves with the port it logs once listening.
 */
function startProxy(args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [join(__dirname, '..', 'main', 'cli.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /"listen":"[^"]*:(\d+)".*acemux listening|acemux listening.*"listen":"[^"]*:(\d+)"/.exec(buf);
      if (m) {
        proc.stdout!.removeAllListeners('data');
        proc.stdout!.resume();
        resolve({ proc, port: Number(m[1] ?? m[2]) });
      }
    });
    proc.once('exit', (code) => reject(new Error(`acemux exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const once = process.argv.includes('--once');
  const port = Number(process.env.PORT ?? 8080);
  const sim = await startEngineSim({ port: 0 });
  const acemux = await startProxy([
    '--listen',
    `127.0.0.1:${once ? 0 : port}`,
    '--engine',
    sim.origin,
    '--state-dir',
    '',
    '--log-level',
    process.env.ACEMUX_LOG_LEVEL ?? 'info',
  ]);
  const base = `http://127.0.0.1:${acemux.port}`;
  const urls = CHANNELS.map((id) => `${base}/ace/getstream?id=${id}`);
  console.log(`engine simulator: ${sim.origin}  (plays a looped H.264 + AAC sample)`);
  console.log(`acemux:           ${base}\n`);

  const body = await grab(urls[0]!, 2500);
  const aligned = body.length >= 188 && body[0] === 0x47 && body[188] === 0x47;
  console.log(`fetched ${(body.length / 1024).toFixed(0)} KiB in 2.5 s, starts at a packet boundary: ${aligned}`);
  const probe = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', '-i', 'pipe:0'], {
    input: body,
  });
  if (probe.error) console.log('ffprobe is not installed: skipping the decode check');
  else if (probe.status === 0) {
    const streams = (JSON.parse(probe.stdout.toString()) as { streams: Array<{ codec_name: string; width?: number; height?: number }> })
      .streams;
    console.log(
      `ffprobe: playable — ${streams.map((s) => (s.width ? `${s.codec_name} ${s.width}x${s.height}` : s.codec_name)).join(' + ')}`,
    );
  } else console.log(`ffprobe could not decode it: ${probe.stderr}`);

  console.log('\nOpen a channel in a player (several at once share one engine session):');
  for (const u of urls) console.log(`  ffplay "${u}"\n  vlc "${u}"\n  mpv "${u}"`);
  console.log(`\nIn a browser (HLS, hls.js served by acemux): ${base}/player?id=${CHANNELS[0]}`);
  console.log(`HLS playlist for any player: ${base}/ace/manifest.m3u8?id=${CHANNELS[0]}`);
  console.log(`\nDashboard: ${base}/   Status: ${base}/ace/status   Ctrl-C to stop.`);

  const stop = async () => {
    acemux.proc.kill('SIGTERM');
    await new Promise((r) => acemux.proc.once('exit', r));
    await sim.close();
    process.exit(probe.error || probe.status === 0 ? 0 : 1);
  };
  if (once) return stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e) => {
  console.error(`demo failed: ${(e as Error).message}`);
  process.exit(1);
});
