import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

t.test('npm run demo shows a playable stream with no engine installed', async (t) => {
  const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'sim', 'demo.js'), '--once'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /starts at a packet boundary: true/);
  t.match(r.stdout, /ffplay "http:\/\/127\.0\.0\.1:\d+\/ace\/getstream\?id=[0-9a-f]{40}"/);
  if (!spawnSync('ffprobe', ['-version']).error) t.match(r.stdout, /ffprobe: playable — h264 640x360 \+ aac/);
});
