// Building the floor (bench/baselines/floor.c) with the system's C compiler.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Compile the floor into `dir`; null (and why, on stderr) when there is no C compiler.
 * @param {string} root  the repository @param {string} dir
 */
export function buildFloor(root, dir) {
  const bin = join(dir, 'floor');
  try {
    execFileSync('cc', ['-O2', '-o', bin, join(root, 'bench/baselines/floor.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    return bin;
  } catch (err) {
    const e = /** @type {any} */ (err);
    console.error(
      `bench: the floor was not built (${e.code === 'ENOENT' ? 'no cc: apt-get install build-essential' : String(e.stderr ?? e.message).trim()}); CPU ratios to it are left out`,
    );
    return null;
  }
}
