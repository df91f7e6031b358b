/**
 * The live dashboard's page: one static HTML file with its CSS and JS inline (no framework, no
 * external resources), fed by the /api/live SSE stream. Read once, then served from memory.
 *
 * tsc does not copy .html into dist, so the page is looked up first where it lives in a checkout
 * (dist/main/ops → ../../../src/main/ops, also right when running the sources under ts-node), then
 * beside this module (dist/main/ops/dashboard.html), where `npm run build` copies it for installs
 * that ship dist/ without src/.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const CANDIDATES = [join(__dirname, '..', '..', '..', 'src', 'main', 'ops', 'dashboard.html'), join(__dirname, 'dashboard.html')];

let cached: string | null = null;

export function dashboardHtml(): string {
  if (cached !== null) return cached;
  for (const path of CANDIDATES) {
    try {
      return (cached = readFileSync(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`dashboard.html not found (looked in ${CANDIDATES.join(', ')})`);
}
