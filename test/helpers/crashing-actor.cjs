'use strict';
/**
 * A test-only acemux: the real CLI, whose actor threads load this file instead of actor-host.js.
 * Each actor is the real one; on a stream's first life this wrapper throws, uncaught, on the
 * thread once the actor has read CRASH_AFTER_BYTES from upstream (from the ring's stats block),
 * as a bug in the actor would: the thread dies with every actor on it. The product carries no
 * hook for this (issue 12).
 */
const { isMainThread } = require('node:worker_threads');
const { join } = require('node:path');

const dist = join(__dirname, '..', '..', 'dist');

if (isMainThread) {
  require(join(dist, 'main', 'cli.js')).main(process.argv.slice(2), { actorEntry: __filename });
} else {
  const runActor = require(join(dist, 'workers', 'actor-host.js')).default;
  const { Ring } = require(join(dist, 'shared', 'ring.js'));
  const crashAfter = Number(process.env.CRASH_AFTER_BYTES || 400_000);
  module.exports = async function crashingActor(task) {
    if ('warmup' in task || task.life > 0) return runActor(task);
    const ring = new Ring(task.ring);
    const watch = setInterval(() => {
      if (ring.readStats().bytesIn >= crashAfter) throw new Error('test: actor crash');
    }, 10);
    try {
      return await runActor(task);
    } finally {
      clearInterval(watch);
    }
  };
}
