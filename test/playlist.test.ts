import t from 'tap';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { loadSource, rewritePlaylist, publicBase, channelIndex, channelsPlaylist, MAX_SOURCE_BYTES } from '../src/main/catalog/playlist';
import { parseChannels } from '../src/main/catalog/channels';
import { startSim } from './helpers/sim';
import { startAcemux } from './helpers/acemux';
import { fetchStream, aligned } from './helpers/client';

const A = '0123456789abcdef0123456789abcdef01234567';
const B = 'fedcba9876543210fedcba9876543210fedcba98';
const C = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

const SOURCE =
  [
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
  t.equal(
    out,
    [
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
    ].join('\n') + '\n',
    'BOM and CRLF gone, base slash trimmed, engine params dropped',
  );
});

t.test('rewrite: token, missing header, odd inputs', async (t) => {
  t.equal(
    rewritePlaylist(`acestream://${A}`, 'http://p:1', { token: 's3cr&t =x' }),
    `#EXTM3U\nhttp://p:1/ace/getstream?id=${A}&token=s3cr%26t%20%3Dx\n`,
    'header added, token encoded',
  );
  t.equal(
    rewritePlaylist(`\n\n#EXTINF:-1,X\nacestream://${A}`, 'http://p:1', { token: '' }),
    `#EXTM3U\n#EXTINF:-1,X\nhttp://p:1/ace/getstream?id=${A}\n`,
    'leading blank lines dropped; an empty token is no token',
  );
  t.equal(rewritePlaylist('', 'http://p'), '#EXTM3U\n');
  t.equal(rewritePlaylist('#extm3u\r', 'http://p'), '#extm3u\n', 'a lowercase header is a header');
  t.equal(rewritePlaylist('#EXTM3U\n\n\n', 'http://p'), '#EXTM3U\n\n\n', 'inner blank lines kept');
  const withToken = rewritePlaylist(SOURCE, 'https://tv.example', { token: 'T' });
  t.equal(withToken.split('\n').filter((l) => l.endsWith('&token=T')).length, 4, 'token on every AceStream link');
  t.notMatch(withToken, /bbc1\.m3u8\?token=abc&token/, 'other links keep their query as written');
});

t.test('publicBase', async (t) => {
  t.equal(
    publicBase('evil', 'https://tv.example/acemux/', 'http://0.0.0.0:8080'),
    'https://tv.example/acemux',
    'ACEMUX_PUBLIC_URL wins, trailing slash removed',
  );
  t.equal(publicBase('proxy.lan:8080', undefined, 'http://fb'), 'http://proxy.lan:8080');
  t.equal(publicBase('192.168.1.10', '', 'http://fb'), 'http://192.168.1.10', 'an empty public URL is unset');
  t.equal(publicBase('[::1]:8080', undefined, 'http://fb'), 'http://[::1]:8080');
  t.equal(publicBase(' my-box.local:80 ', undefined, 'http://fb'), 'http://my-box.local:80');
  for (const bad of [
    undefined,
    '',
    'a b',
    'host:80/path',
    'host\r\n#EXTINF:-1,x',
    'user@host',
    'host:99999',
    'host:0',
    'host:',
    'host:80:81',
    '-host',
    '[::1',
    'host?x',
    '"host"',
    'hóst',
    'host/',
    '[zz::1]',
  ])
    t.equal(publicBase(bad, undefined, 'http://fb/'), 'http://fb', `rejected: ${JSON.stringify(bad)}`);
});

t.test('loadSource from a file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-playlist-'));
  const file = join(dir, 'list.m3u');
  writeFileSync(file, SOURCE);
  t.equal(await loadSource(file, 1000), SOURCE);
  t.equal(await loadSource(pathToFileURL(file).href, 1000), SOURCE, 'a file: URL');
  await t.rejects(loadSource(join(dir, 'nope.m3u'), 1000), {
    name: 'PlaylistError',
    message: `playlist ${join(dir, 'nope.m3u')}: cannot read it (ENOENT)`,
  });
  const big = join(dir, 'big.m3u');
  writeFileSync(big, Buffer.alloc(MAX_SOURCE_BYTES + 1, 0x41));
  await t.rejects(loadSource(big, 1000), { name: 'PlaylistError', message: `playlist ${big} is larger than ${MAX_SOURCE_BYTES} bytes` });
  await t.rejects(loadSource(dir, 1000), { name: 'PlaylistError', message: /cannot read it \(EISDIR\)/ });
});

t.test('loadSource over HTTP', async (t) => {
  const server: Server = createServer((req, res) => {
    switch (new URL(req.url!, 'http://x').pathname) {
      case '/list.m3u':
        res.writeHead(200, { 'content-type': 'audio/x-mpegurl' });
        res.end(SOURCE);
        return;
      case '/moved':
        res.writeHead(302, { location: '/list.m3u' });
        res.end();
        return;
      case '/missing':
        res.writeHead(404);
        res.end('not here');
        return;
      case '/declared-big':
        res.writeHead(200, { 'content-length': String(MAX_SOURCE_BYTES + 1) });
        res.write('#EXTM3U\n');
        return;
      case '/chunked-big': {
        // No Content-Length: the size is only known by counting.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1 << 20, 0x41);
        let sent = 0;
        const pump = () => {
          while (sent <= MAX_SOURCE_BYTES) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return;
      }
      case '/hang':
        return; // never answers
      default:
        res.writeHead(500);
        res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  t.equal(await loadSource(`${base}/list.m3u`, 2000), SOURCE);
  t.equal(await loadSource(`${base}/moved`, 2000), SOURCE, 'redirects are followed');
  await t.rejects(
    loadSource(`${base}/missing?token=secret`, 2000),
    { name: 'PlaylistError', message: `playlist ${base}/missing answered HTTP 404` },
    'status named, query left out',
  );
  await t.rejects(loadSource(`${base}/declared-big`, 2000), {
    name: 'PlaylistError',
    message: `playlist ${base}/declared-big is larger than ${MAX_SOURCE_BYTES} bytes (${MAX_SOURCE_BYTES + 1})`,
  });
  await t.rejects(loadSource(`${base}/chunked-big`, 5000), {
    name: 'PlaylistError',
    message: `playlist ${base}/chunked-big is larger than ${MAX_SOURCE_BYTES} bytes`,
  });
  const started = Date.now();
  await t.rejects(loadSource(`${base}/hang`, 300), {
    name: 'PlaylistError',
    message: `playlist ${base}/hang did not arrive within 300 ms`,
  });
  t.ok(Date.now() - started < 2000, 'bounded by the timeout');
  await t.rejects(loadSource('http://[bad/x.m3u', 2000), { name: 'PlaylistError', message: /^playlist \(bad URL\) could not be fetched/ });
  await t.rejects(loadSource('http://127.0.0.1:1/x.m3u', 2000), {
    name: 'PlaylistError',
    message: /^playlist http:\/\/127\.0\.0\.1:1\/x\.m3u could not be fetched \(ECONNREFUSED\)$/,
  });
});

/** Sky with an alternate (two entries, one tvg-id) and a Cyrillic name; C is in no channel. */
const CHANNELS = [
  '#EXTM3U',
  '#EXTINF:-1 tvg-id="sky.uk" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports',
  `acestream://${A}`,
  '#EXTINF:-1 tvg-id="sky.uk",Sky Sports HD',
  `acestream://?infohash=${B}`,
  '#EXTINF:-1 group-title="Новости",Первый "канал"',
  `acestream://${'c'.repeat(40)}`,
].join('\n');

t.test('rewrite with a channels file: entries of a channel point at /ace/channel/<name>', async (t) => {
  const { channels } = parseChannels(CHANNELS, 'm3u');
  const channelOf = channelIndex(channels.values());
  t.equal(channelOf({ name: 'id', value: A }), 'sky-sports');
  t.equal(channelOf({ name: 'infohash', value: B }), 'sky-sports', 'an alternate maps to its channel');
  t.equal(channelOf({ name: 'id', value: B }), undefined, 'the kind of id matters');
  const out = rewritePlaylist(SOURCE, 'http://p:1/', { token: 'T', channelOf }).split('\n');
  t.equal(out[3], 'http://p:1/ace/channel/sky-sports?token=T', 'a channel id: the channel link, token as the only query');
  t.equal(out[12], 'http://p:1/ace/channel/sky-sports?token=T', 'an alternate entry plays the channel too');
  t.equal(out[8], `http://p:1/ace/getstream?id=${C.toLowerCase()}&token=T`, 'an id no channel lists stays a getstream link');
  t.equal(
    out[1],
    '#EXTINF:-1 tvg-id="sky.uk" tvg-name="Sky, HD" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports, Main Event',
    'EXTINF kept',
  );
});

t.test('channels file without a source playlist: one entry per channel', async (t) => {
  const { channels } = parseChannels(CHANNELS, 'm3u');
  t.equal(
    channelsPlaylist(channels.values(), 'http://p:1/'),
    [
      '#EXTM3U',
      '#EXTINF:-1 tvg-id="sky.uk" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports',
      'http://p:1/ace/channel/sky-sports',
      '#EXTINF:-1 group-title="Новости",Первый "канал"',
      `http://p:1/ace/channel/${encodeURIComponent('первый-канал')}`,
    ].join('\n') + '\n',
  );
  const hostile = new Map([
    ['x', { name: 'X\n#EXTINF:-1,injected', slug: 'x', ids: [{ name: 'id' as const, value: A }], group: 'a" tvg-id="b' }],
  ]);
  t.equal(
    channelsPlaylist(hostile.values(), 'http://p', { token: 'a b' }),
    '#EXTM3U\n#EXTINF:-1 group-title="a  tvg-id= b",X #EXTINF:-1,injected\nhttp://p/ace/channel/x?token=a%20b\n',
    'no line or quote breaks out',
  );
});

t.test('/playlist.m3u with a channels file plays the channel (failover included)', async (t) => {
  const sim = await startSim(['--bitrate', '2000000']);
  const dir = mkdtempSync(join(tmpdir(), 'acemux-plch-'));
  const file = join(dir, 'channels.m3u');
  writeFileSync(file, CHANNELS);
  const both = await startAcemux(sim.origin, ['--channels', file, '--playlist', file]);
  const only = await startAcemux(sim.origin, ['--channels', file]);
  t.teardown(async () => {
    await both.stop();
    await only.stop();
    await sim.stop();
  });
  const lines = (await fetchStream(`${both.origin}/playlist.m3u`)).body.toString().split('\n');
  t.equal(lines[2], `${both.origin}/ace/channel/sky-sports`);
  t.equal(lines[4], `${both.origin}/ace/channel/sky-sports`);
  const listed = (await fetchStream(`${only.origin}/playlist.m3u`)).body.toString().split('\n');
  t.equal(listed.filter((l) => l.startsWith('#EXTINF')).length, 2, 'no source playlist: the channels, once each');
  t.equal(listed[2], `${only.origin}/ace/channel/sky-sports`);
  const r = await fetchStream(lines[2]!, { bytes: 200_000 });
  t.equal(r.status, 200, 'the playlist link plays');
  t.ok(aligned(r.body.subarray(0, r.body.length - (r.body.length % 188))), 'MPEG-TS');
  const st = JSON.parse((await fetchStream(`${both.origin}/ace/status?id=${A}`)).body.toString());
  t.equal(st.channel, 'Sky Sports', 'the stream runs as the channel');
});
