import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseChannels, loadChannels, slugOf, formatOf, type Channel } from '../src/main/catalog/channels';
import { ChannelsError } from '../src/main/errors';

const H = (n: number) => n.toString(16).padStart(2, '0').repeat(20);
const id = (n: number) => ({ name: 'id', value: H(n) });
const ih = (n: number) => ({ name: 'infohash', value: H(n) });
const plain = (c: Channel | undefined) => c && { ...c, ids: c.ids.map((x) => ({ ...x })) };

const M3U = [
  '\uFEFF#EXTM3U url-tvg="http://epg.example/guide.xml"',
  '#EXTINF:-1 tvg-id="sky.uk" tvg-logo="http://logo/sky.png" group-title="Sport",Sky Sports HD',
  `acestream://${H(1)}`,
  '#EXTINF:-1 tvg-id="bbc1.uk" group-title="News",BBC One',
  'http://plain.example/bbc1.m3u8',
  '#EXTINF:-1 tvg-id="sky.uk" tvg-logo="http://logo/other.png",Sky Sports SD',
  '#EXTVLCOPT:network-caching=1000',
  `http://127.0.0.1:6878/ace/getstream?id=${H(2).toUpperCase()}`,
  '#EXTINF:-1 group-title="Football",Canal+ España',
  `acestream://?infohash=${H(3)}`,
  '#EXTINF:-1 tvg-name="Ignored, here",Canal+ España',
  `https://engine.example:443/ace/manifest.m3u8?content_id=${H(4)}`,
  '#EXTINF:-1 tvg-id="sky.uk",Sky dup',
  `acestream://${H(1)}`,
  '#EXTINF:-1 tvg-id="sky.uk",Sky alt 3',
  `acestream://${H(5)}`,
  '#EXTINF:-1,Первый канал',
  `acestream://${H(6)}`,
  '#EXTINF:-1 tvg-name="From tvg-name",',
  `acestream://${H(7)}`,
  '#EXTINF:-1,!!!',
  `acestream://${H(8)}`,
  'rtmp://elsewhere/live',
].join('\r\n');

t.test('M3U: grouped by tvg-id or name, alternates in playlist order, non-AceStream skipped', async (t) => {
  const { channels, warnings } = parseChannels(M3U, 'm3u');
  t.same([...channels.keys()], ['sky-sports-hd', 'canal-espana', 'первый-канал', 'from-tvg-name']);
  t.same(
    plain(channels.get('sky-sports-hd')),
    {
      name: 'Sky Sports HD',
      slug: 'sky-sports-hd',
      tvgId: 'sky.uk',
      logo: 'http://logo/sky.png',
      group: 'Sport',
      ids: [id(1), id(2), id(5)],
    },
    'one channel for the tvg-id, first name and logo, duplicate id dropped',
  );
  t.same(
    plain(channels.get('canal-espana')),
    {
      name: 'Canal+ España',
      slug: 'canal-espana',
      group: 'Football',
      ids: [ih(3), id(4)],
    },
    'grouped by display name without tvg-id; infohash kept as infohash',
  );
  t.same(channels.get('первый-канал')!.ids, [id(6)]);
  t.equal(channels.get('from-tvg-name')!.name, 'From tvg-name', 'tvg-name stands in for an empty display name');
  t.same(warnings, [
    'channels file line 5: not an AceStream link, skipped',
    'channels file line 22: no channel name, skipped',
    'channels file line 23: not an AceStream link, skipped',
  ]);
});

t.test('M3U: channels with different tvg-ids but one slug merge', async (t) => {
  const text = `#EXTINF:-1 tvg-id="a",News 24\nacestream://${H(1)}\n#EXTINF:-1 tvg-id="b" tvg-logo="L",news-24\nacestream://${H(2)}\n`;
  const { channels } = parseChannels(text, 'm3u');
  t.same(
    plain(channels.get('news-24')),
    { name: 'News 24', slug: 'news-24', tvgId: 'a', logo: 'L', ids: [id(1), id(2)] },
    'gaps filled from the later one',
  );
});

t.test('M3U: nothing usable is an error', async (t) => {
  t.throws(
    () => parseChannels('#EXTM3U\n#EXTINF:-1,Web\nhttp://x/y.m3u8\n', 'm3u'),
    new ChannelsError('channels file has no channels (1 entries skipped: channels file line 3: not an AceStream link, skipped)'),
  );
  t.throws(() => parseChannels('', 'm3u'), new ChannelsError('channels file has no channels'));
});

t.test('JSON: the three forms', async (t) => {
  const wrapped = JSON.stringify({
    channels: [
      {
        name: 'Sky Sports',
        ids: [H(1), { infohash: H(2).toUpperCase() }, `acestream://${H(3)}`, { content_id: H(4) }, { id: H(1) }],
        tvg_id: 'sky.uk',
        logo: 'http://l/s.png',
        group: 'Sport',
      },
      { name: 'BBC One', ids: [`http://e:6878/ace/getstream?infohash=${H(5)}`], tvgId: 'bbc1' },
    ],
  });
  const a = parseChannels(wrapped, 'json');
  t.same(plain(a.channels.get('sky-sports')), {
    name: 'Sky Sports',
    slug: 'sky-sports',
    tvgId: 'sky.uk',
    logo: 'http://l/s.png',
    group: 'Sport',
    ids: [id(1), ih(2), id(3), id(4)],
  });
  t.same(plain(a.channels.get('bbc-one')), { name: 'BBC One', slug: 'bbc-one', tvgId: 'bbc1', ids: [ih(5)] });
  t.same(a.warnings, []);

  const bare = parseChannels(`\uFEFF[{"name":"X","ids":["${H(9)}"],"tvg-id":"x.id","logo":null}]`, 'json');
  t.same(plain(bare.channels.get('x')), { name: 'X', slug: 'x', tvgId: 'x.id', ids: [id(9)] });

  const map = parseChannels(JSON.stringify({ 'Sky Sports': [H(1), H(2)], 'sky sports!': [H(3), H(1)], Eurosport: H(4) }), 'json');
  t.same([...map.channels.keys()], ['sky-sports', 'eurosport']);
  t.same(map.channels.get('sky-sports')!.ids, [id(1), id(2), id(3)], 'same slug merges ids in order, deduplicated');
  t.equal(map.channels.get('sky-sports')!.name, 'Sky Sports', 'first name stands');
  t.same(map.channels.get('eurosport')!.ids, [id(4)], 'a single id as a string');

  const named = parseChannels(JSON.stringify({ channels: [H(1)] }), 'json');
  t.same([...named.channels.keys()], ['channels'], 'a "channels" key holding ids is a channel called channels');
});

t.test('JSON: every error names the channel or line', async (t) => {
  const err = (text: string, message: string | RegExp, why?: string) =>
    t.throws(() => parseChannels(text, 'json'), { name: 'ChannelsError', message }, why ?? String(message));
  err('{\n  "a": [\n    "x",\n  ]\n}', /^channels file line 4: not valid JSON \(/, 'trailing comma: the line of the ]');
  err('{\n  "a": ["x"]\n  "b": ["y"]\n}', /^channels file line 3: not valid JSON \(/, 'missing comma');
  err('{"channels": [\n  {"name": "A",\n   "ids": [\n', /^channels file line 4: not valid JSON \(/, 'truncated');
  err('[{"name": "A", "n": -1.5e3, "ok": true, "x": null}\n,]', /^channels file line 2: not valid JSON \(/, 'after atoms');
  err('[{name: "A"}]', /^channels file line 1: not valid JSON \(/, 'unquoted key');
  err('"just a string"', 'channels file: expected {"channels":[…]}, an array of channels or an object of name → ids');
  err('[1]', 'channels file: channel 1 is not an object');
  err(`{"channels":[{"name":"A","ids":["${H(1)}"]},null]}`, 'channels file: channel 2 is not an object');
  err(`[{"name":"A","ids":["${H(1)}"]},{"ids":["${H(1)}"]}]`, 'channels file: channel 2 has no name');
  err(`[{"name":"  ","ids":["${H(1)}"]}]`, 'channels file: channel 1 has no name');
  err(`[{"name":"***","ids":["${H(1)}"]}]`, 'channel "***": the name has no letters or digits to make a URL from');
  err('[{"name":"Sky"}]', 'channel "Sky": "ids" must be a non-empty array');
  err('[{"name":"Sky","ids":[]}]', 'channel "Sky": "ids" must be a non-empty array');
  err('{"Sky":[]}', 'channel "Sky": "ids" must be a non-empty array');
  err(`[{"name":"Sky","ids":["${H(1)}","${H(2)}","abc"]}]`, 'channel "Sky": id 3 is not 40 hex characters (nor an AceStream link): "abc"');
  err(`[{"name":"Sky","ids":["${H(1)}g"]}]`, /^channel "Sky": id 1 is not 40 hex characters/);
  err(`[{"name":"Sky","ids":[{"infohash":"${H(1).slice(1)}"}]}]`, 'channel "Sky": id 1 (infohash) is not 40 hex characters');
  err(
    `[{"name":"Sky","ids":[{"hash":"${H(1)}"}]}]`,
    'channel "Sky": id 1 must be a string or an object with one key: id, content_id or infohash',
  );
  err(
    `[{"name":"Sky","ids":[{"id":"${H(1)}","infohash":"${H(2)}"}]}]`,
    'channel "Sky": id 1 must be a string or an object with one key: id, content_id or infohash',
  );
  err(`[{"name":"Sky","ids":[42]}]`, 'channel "Sky": id 1 must be a string or an object with one key: id, content_id or infohash');
  err(`[{"name":"Sky","ids":["${H(1)}"],"logo":5}]`, 'channel "Sky": "logo" must be a string');
  err(`[{"name":"Sky","ids":["${H(1)}"],"tvg_id":["x"]}]`, 'channel "Sky": "tvg_id" must be a string');
  err('[]', 'channels file has no channels');
  err('{}', 'channels file has no channels');
});

t.test('slugs and format detection', async (t) => {
  t.equal(slugOf('  Sky Sports: Main Event (HD)  '), 'sky-sports-main-event-hd');
  t.equal(slugOf('Canal+ España'), 'canal-espana');
  t.equal(slugOf('Das Erste ÄÖÜ'), 'das-erste-aou');
  t.equal(slugOf('--'), '');
  t.equal(formatOf('/x/list.M3U8', '{'), 'm3u');
  t.equal(formatOf('/x/list.m3u', '['), 'm3u');
  t.equal(formatOf('/x/channels.json', '#EXTM3U'), 'json');
  t.equal(formatOf('/x/channels', '  \n[{}]'), 'json');
  t.equal(formatOf('/x/channels.txt', '\uFEFF{"a":1}'), 'json');
  t.equal(formatOf('/x/channels', '#EXTM3U'), 'm3u');
});

t.test('loadChannels reads a file and picks the format', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'acemux-channels-'));
  writeFileSync(join(dir, 'list.m3u'), M3U);
  writeFileSync(join(dir, 'list'), JSON.stringify({ A: [H(1)] }));
  writeFileSync(join(dir, 'bad.json'), '[{"name":"A","ids":["nope"]}]');
  const m = await loadChannels(join(dir, 'list.m3u'));
  t.equal(m.channels.size, 4);
  t.equal(m.warnings.length, 3);
  t.same((await loadChannels(join(dir, 'list'))).channels.get('a')!.ids, [id(1)], 'sniffed as JSON');
  await t.rejects(loadChannels(join(dir, 'bad.json')), { name: 'ChannelsError', message: /^channel "A": id 1 is not 40 hex/ });
  await t.rejects(loadChannels(join(dir, 'missing.m3u')), {
    name: 'ChannelsError',
    message: `channels file ${join(dir, 'missing.m3u')}: cannot read it (ENOENT)`,
  });
});
