/**
 * The browser player: /player (a page of its own beside the dashboard) and /player/hls.min.js,
 * hls.js from acemux's own node_modules, so a browser never needs a CDN. hls.js is an optional
 * dependency: without it the script answers 404 with a coded error saying how to add it, and the
 * page says so instead of failing silently.
 *
 * The page is looked up like dashboard.html (dashboard.ts): in the checkout, then beside this module.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { notFound } from '../errors';

const PAGE = [join(__dirname, '..', '..', '..', 'src', 'main', 'ops', 'player.html'), join(__dirname, '..', 'ops', 'player.html')];
let page: string | null = null;
let script: Buffer | null | undefined;

export function playerHtml(): string {
  if (page !== null) return page;
  for (const path of PAGE) {
    try {
      return (page = readFileSync(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`player.html not found (looked in ${PAGE.join(', ')})`);
}

/** hls.js's minified build, or null when the package is not installed. */
export function hlsJs(): Buffer | null {
  if (script !== undefined) return script;
  try {
    script = readFileSync(require.resolve('hls.js/dist/hls.min.js'));
  } catch {
    script = null;
  }
  return script;
}

export const hlsJsMissing = () => notFound('hls.js is not installed: add the npm package hls.js to acemux to play in the browser');

/** The player page's policy: scripts from here only, media through MSE blobs, data from here. */
export const PLAYER_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; img-src data:";
