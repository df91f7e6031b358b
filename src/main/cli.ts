#!/usr/bin/env node
/** `acemux [options]`: parse config (exit 2 on a bad value), serve, shut down cleanly on signals. */
import { loadConfig, helpText } from './config';
import { ChannelsError, ConfigError } from './errors';
import { createLogger } from './log';
import { startServer, type ServerOptions } from './server';

/** Exported so a test can run the real CLI with a substitute actor entry (test/helpers/crashing-actor.cjs). */
export async function main(argv = process.argv.slice(2), opts: ServerOptions = {}): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h') || argv.includes('-help')) {
    process.stdout.write(helpText());
    return;
  }
  let cfg;
  const warnings: string[] = [];
  try {
    cfg = loadConfig(argv, process.env, (w) => warnings.push(w));
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`acemux: bad configuration: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(cfg.logLevel);
  for (const w of warnings) log.warn(w);
  let running;
  try {
    running = await startServer(cfg, log, opts);
  } catch (e) {
    const err = e as Error;
    if (err instanceof ChannelsError) {
      process.stderr.write(`acemux: bad channels file: ${err.message}\n`);
      process.exit(2);
    }
    log.fatal({ err: err.message }, 'cannot start');
    process.exit(1);
  }
  log.info({ listen: `${cfg.listenHost || '*'}:${running.port}`, engines: cfg.engines }, 'acemux listening');
  const stop = (signal: string) => {
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, cfg.shutdownTimeoutMs).unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  // SIGQUIT and SIGINT drain like SIGTERM; a second one while draining changes nothing (the
  // shutdown bound still holds). SIGHUP re-reads the channels file and never ends the process.
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGQUIT'] as const) {
    process.on(signal, () => {
      if (stopping) return void log.info({ signal }, 'already shutting down');
      stopping = true;
      stop(signal);
    });
  }
  process.on('SIGHUP', () => void running.reload());
}

if (require.main === module) void main();
