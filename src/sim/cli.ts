#!/usr/bin/env node
// Process entry for the engine simulator. Prints exactly one JSON line on stdout once listening:
//   {"event":"listening","host":"127.0.0.1","port":N}
// and exits with 0 on SIGTERM/SIGINT after closing every socket. Bad flags exit with 2.

import { parseArgs } from 'node:util';
import { startEngineSim, type EngineSimOptions } from './engine-sim';
import { parseFaultSet } from './faults';

const USAGE = `usage: node dist/sim/cli.js [flags]
  --host H               listen address (127.0.0.1)
  --port N               listen port (0 = ephemeral)
  --bitrate BPS          pacing rate; default the sample's mux rate (synthetic: 4000000); 0 = unthrottled
  --loop-mode M          continuous (timestamps shifted per loop) | discontinuity (flag per loop)
  --prebuffer-ms MS      hold playback headers until MS after getstream (0)
  --burst-bytes N        bytes sent at link speed when playback starts, before pacing (0)
  --chunk-min N          smallest write (1000)
  --chunk-max N          largest write (20000)
  --tick-ms MS           pacing cadence: every MS the chunks due are written (15)
  --synthetic            generated stream with sequence numbers and send times (benchmarks)
  --chunked              chunked playback bodies (default: close-delimited)
  --idle-session-ms MS   end sessions nobody reads after MS (60000)
  --seed N               PRNG seed for chunk sizes (1)
  --sample PATH          MPEG-TS file to loop (assets/sample.mpegts)
  --faults JSON          initial faults, as POST /sim/faults takes them`;

function fail(msg: string): never {
  process.stderr.write(`${msg}\n${USAGE}\n`);
  process.exit(2);
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) fail(`--${name} must be a number >= 0`);
  return n;
}

function parseOptions(argv: string[]): EngineSimOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        bitrate: { type: 'string' },
        'loop-mode': { type: 'string' },
        'prebuffer-ms': { type: 'string' },
        'burst-bytes': { type: 'string' },
        'chunk-min': { type: 'string' },
        'chunk-max': { type: 'string' },
        'tick-ms': { type: 'string' },
        synthetic: { type: 'boolean' },
        chunked: { type: 'boolean' },
        'idle-session-ms': { type: 'string' },
        seed: { type: 'string' },
        sample: { type: 'string' },
        faults: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const loopMode = values['loop-mode'];
  if (loopMode !== undefined && loopMode !== 'continuous' && loopMode !== 'discontinuity') {
    fail('--loop-mode must be continuous or discontinuity');
  }
  let faults;
  if (values.faults !== undefined) {
    try {
      faults = parseFaultSet(JSON.parse(values.faults));
    } catch (err) {
      fail(`--faults: ${(err as Error).message}`);
    }
  }
  const chunkMin = num(values['chunk-min'], 'chunk-min') ?? 1000;
  const chunkMax = num(values['chunk-max'], 'chunk-max') ?? Math.max(20000, chunkMin);
  if (chunkMin < 1 || chunkMin > chunkMax) fail('need 1 <= --chunk-min <= --chunk-max');
  const tickMs = num(values['tick-ms'], 'tick-ms');
  if (tickMs !== undefined && (tickMs < 1 || tickMs > 1000)) fail('--tick-ms must be 1..1000');
  return {
    host: values.host,
    port: num(values.port, 'port'),
    bitrate: num(values.bitrate, 'bitrate'),
    loopMode,
    prebufferMs: num(values['prebuffer-ms'], 'prebuffer-ms'),
    burstBytes: num(values['burst-bytes'], 'burst-bytes'),
    chunkMin,
    chunkMax,
    tickMs,
    synthetic: values.synthetic,
    body: values.chunked ? 'chunked' : 'close',
    idleSessionMs: num(values['idle-session-ms'], 'idle-session-ms'),
    seed: num(values.seed, 'seed'),
    samplePath: values.sample,
    faults,
  };
}

async function main(): Promise<void> {
  const sim = await startEngineSim(parseOptions(process.argv.slice(2)));
  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    sim.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.stdout.on('error', () => {}); // a parent that stopped reading must not crash us
  process.stdout.write(`${JSON.stringify({ event: 'listening', host: sim.host, port: sim.port })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`engine sim: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
