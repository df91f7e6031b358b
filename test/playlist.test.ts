import t from 'tap';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { loadSource, rewritePlaylist, publicBase, MAX_SOURCE_BYTES } from '../src/main/catalog/playlist';

const A = '0123456789abcdef0123456789abcdef01234567';
const B = 'fedcba9876543210fedcba9876543210fedcba98';
const C = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

const SOURCE = [
  '\uFEFF#EXTM3U url-tvg="http://epg.example/guide.xml.gz" tvg-shift="+1"',
  '#EXTINF:-1 tvg-id="sky.uk" tvg-name="Sky, HD" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports, Main Event',
  '#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11; Linux x86_64)',
  `acestream://${A}`,
  '#EXTINF:-1 tvg-id="bbc1.uk" group-title="News",BBC One',
  'http://plain.example/live/bbc1.m3u8?token=abc',
  '',
  '#EXTINF:-1 group-title="Alt",Engine A',
  `http://192.168.1.5:6878/ace/getstream?id=${C}&pid=99`,
  '#EXTINF:-1,Engine B (manifest)',
  `https://ace.example:8443/ace/manifest.m3u8?infohash=${B}`,
  '#EXTINF:-1,Infohash link',
  `  acestream://?infohash=${B}  `,
  '# a comment with acestream://' + A,
  `http://host/ace/getstream?id=not-hex`,
].join('\r\n') + '\r\n';

t.test('rewrite: AceStream links point at the proxy, every other line is untouched', async (t) => {
  const out = rewritePlaylist(SOURCE, 'http://proxy.lan:8080/');
  t.equal(out, [
    '#EXTM3U url-tvg="http://epg.example/guide.xml.gz" tvg-shift="+1"',
    '#EXTINF:-1 tvg-id="sky.uk" tvg-name="Sky, HD" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports, Main Event',
    '#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11; Linux x86_64)',
    `http://proxy.lan:8080/ace/getstream?id=${A}`,
    '#EXTINF:-1 tvg-id="bbc1.uk" group-title="News",BBC One',
    'http://plain.example/live/bbc1.m3u8?token=abc',
    '',
    '#EXTINF:-1 group-title="Alt",Engine A',
    `http://proxy.lan:8080/ace/getstream?id=${C.toLowerCase()}`,
    '#EXTINF:-1,Engine B (manifest)',
    `http://proxy.lan:8080/ace/getstream?infohash=${B}`,
    '#EXTINF:-1,Infohash link',
    `http://proxy.lan:8080/ace/getstream?infohash=${B}`,
    '# a comment with acestream://' + A,
    'http://host/ace/getstream?id=not-hex',
  ].join('\n') + '\n', 'BOM and CRLF gone, base slash trimmed, engine params dropped');
});

t.test('rewrite: token, missing header, odd inputs', async (t) => {
  t.equal(rewritePlaylist(`acestream://${A}`, 'http://p:1', { token: 's3cr&t =x' }),
    `#EXTM3U\nhttp://p:1/ace/getstream?id=${A}&token=s3cr%26t%20%3Dx\n`, 'header added, token encoded');
  t.equal(rewritePlaylist(`\n\n#EXTINF:-1,X\nacestream://${A}`, 'http://p:1', { token: '' }),
    `#EXTM3U\n#EXTINF:-1,X\nhttp://p:1/ace/getstream?id=${A}\n`, 'leading blank lines dropped; an empty token is no token');
  t.equal(rewritePlaylist('', 'http://p'), '#EXTM3U\n');
  t.equal(rewritePlaylist('#extm3u\r', 'http://p'), '#extm3u\n', 'a lowercase header is a header');
  t.equal(rewritePlaylist('#EXTM3U\n\n\n', 'http://p'), '#EXTM3U\n\n\n', 'inner blank lines kept');
  const withToken = rewritePlaylist(SOURCE, 'https://tv.example', { token: 'T' });
  t.equal(withToken.split('\n').filter((l) => l.endsWith('&token=T')).length, 4, 'token on every AceStream link');
  t.notMatch(withToken, /bbc1\.m3u8\?token=abc&token/, 'other links keep their query as written');
});

t.test('publicBase', async (t) => {
  t.equal(publicBase('evil', 'https://tv.example/acemux/', 'http://0.0.0.0:8080'), 'https://tv.example/acemux', 'ACEMUX_PUBLIC_URL wins, trailing slash removed');
  t.equal(publicBase('proxy.lan:8080', undefined, 'http://fb'), 'http://proxy.lan:8080');
  t.equal(publicBase('192.168.1.10', '', 'http://fb'), 'http://192.168.1.10', 'an empty public URL is unset');
  t.equal(publicBase('[::1]:8080', undefined, 'http://fb'), 'http://[::1]:8080');
  t.equal(publicBase(' my-box.local:80 ', undefined, 'http://fb'), 'http://my-box.local:80');
  for (const bad of [
    undefined, '', 'a b', 'host:80/path', 'host\r\n#EXTINF:-1,x', 'user@host', 'host:99999', 'host:0', 'host:',
    'host:80:81', '-host', '[::1', 'host?x', '"host"', 'hóst', 'host/', '[zz::1]',
  ]) t.equal(publicBase(bad, undefined, 'http://fb/'), 'http://fb', `rejected: ${JSON.stringify(bad)}`);
});

t.test('loadSource from a file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-playlist-'));
  const file = join(dir, 'list.m3u');
  writeFileSync(file, SOURCE);
  t.equal(await loadSource(file, 1000), SOURCE);
  t.equal(await loadSource(pathToFileURL(file).href, 1000), SOURCE, 'a file: URL');
  await t.rejects(loadSource(join(dir, 'nope.m3u'), 1000), { name: 'PlaylistError', message: `playlist ${join(dir, 'nope.m3u')}: cannot read it (ENOENT)` });
  const big = join(dir, 'big.m3u');
  writeFileSync(big, Buffer.alloc(MAX_SOURCE_BYTES + 1, 0x41));
  await t.rejects(loadSource(big, 1000), { name: 'PlaylistError', message: `playlist ${big} is larger than ${MAX_SOURCE_BYTES} bytes` });
  await t.rejects(loadSource(dir, 1000), { name: 'PlaylistError', message: /cannot read it \(EISDIR\)/ });
});

t.test('loadSource over HTTP', async (t) => {
  const server: Server = createServer((req, res) => {
    switch (new URL(req.url!, 'http://x').pathname) {
      case '/list.m3u': res.writeHead(200, { 'content-type': 'audio/x-mpegurl' }); res.end(SOURCE); return;
      case '/moved': res.writeHead(302, { location: '/list.m3u' }); res.end(); return;
      case '/missing': res.writeHead(404); res.end('not here'); return;
      case '/declared-big': res.writeHead(200, { 'content-length': String(MAX_SOURCE_BYTES + 1) }); res.write('#EXTM3U\n'); return;
      case '/chunked-big': {
        // No Content-Length: the size is only known by counting.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1 << 20, 0x41);
        let sent = 0;
        const pump = () => {
          while (sent <= MAX_SOURCE_BYTES) { sent += chunk.length; if (!res.write(chunk)) { res.once('drain', pump); return; } }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return;
      }
      case '/hang': return; // never answers
      default: res.writeHead(500); res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  t.equal(await loadSource(`${base}/list.m3u`, 2000), SOURCE);
  t.equal(await loadSource(`${base}/moved`, 2000), SOURCE, 'redirects are followed');
  await t.rejects(loadSource(`${base}/missing?token=secret`, 2000), { name: 'PlaylistError', message: `playlist ${base}/missing answered HTTP 404` }, 'status named, query left out');
  await t.rejects(loadSource(`${base}/declared-big`, 2000), { name: 'PlaylistError', message: `playlist ${base}/declared-big is larger than ${MAX_SOURCE_BYTES} bytes (${MAX_SOURCE_BYTES + 1})` });
  await t.rejects(loadSource(`${base}/chunked-big`, 5000), { name: 'PlaylistError', message: `playlist ${base}/chunked-big is larger than ${MAX_SOURCE_BYTES} bytes` });
  const started = Date.now();
  await t.rejects(loadSource(`${base}/hang`, 300), { name: 'PlaylistError', message: `playlist ${base}/hang did not arrive within 300 ms` });
  t.ok(Date.now() - started < 2000, 'bounded by the timeout');
  await t.rejects(loadSource('http://[bad/x.m3u', 2000), { name: 'PlaylistError', message: /^playlist \(bad URL\) could not be fetched/ });
  await t.rejects(loadSource('http://127.0.0.1:1/x.m3u', 2000), { name: 'PlaylistError', message: /^playlist http:\/\/127\.0\.0\.1:1\/x\.m3u could not be fetched \(ECONNREFUSED\)$/ });
});
