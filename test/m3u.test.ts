import t from 'tap';
import { parseM3u, parsePlaylist, parseExtinf, contentIdOf, splitLines } from '../src/main/catalog/m3u';

const A = '0123456789abcdef0123456789abcdef01234567';
const B = 'fedcba9876543210fedcba9876543210fedcba98';
const UPPER = 'ABCDEF0123456789ABCDEF0123456789ABCDEF01';

const LIST = [
  '\uFEFF#EXTM3U url-tvg="http://epg.example/guide.xml.gz" x-tvg-url="http://b.example/x.xml" refresh=3600',
  '',
  '#EXTINF:-1 tvg-id="sky.uk" tvg-name="Sky, Sports HD" tvg-logo="http://logo.example/sky.png" group-title="Sport",Sky Sports, Main Event',
  '#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11; Linux)',
  '#EXTGRP:Sport',
  `acestream://${A}`,
  '#EXTINF:-1 tvg-ID="bbc1.uk" group-title=News,BBC One',
  'http://plain.example/live/bbc1.m3u8',
  '',
  '#EXTINF:0,Engine link',
  `http://192.168.1.5:6878/ace/getstream?id=${UPPER}`,
  `acestream://?infohash=${B}`,
  '#EXTINF:-1 tvg-id="dangling",Has no URL',
  '#EXTINF:-1 tvg-name=\'Single quoted\' group-title="A b",  Spaced name  ',
  `https://proxy.example/ace/manifest.m3u8?content_id=${A}&pid=7`,
].join('\r\n');

t.test('a realistic playlist: header, attributes, extras, entries without #EXTINF', async (t) => {
  const p = parsePlaylist(LIST);
  t.equal(
    p.header,
    '#EXTM3U url-tvg="http://epg.example/guide.xml.gz" x-tvg-url="http://b.example/x.xml" refresh=3600',
    'BOM stripped, raw line kept',
  );
  t.same(p.headerAttrs, { 'url-tvg': 'http://epg.example/guide.xml.gz', 'x-tvg-url': 'http://b.example/x.xml', refresh: '3600' });
  t.equal(p.entries.length, 5);
  const [sky, bbc, eng, bare, spaced] = p.entries;
  t.equal(sky!.name, 'Sky Sports, Main Event', 'commas in the name after the attributes');
  t.same(sky!.attrs, {
    'tvg-id': 'sky.uk',
    'tvg-name': 'Sky, Sports HD',
    'tvg-logo': 'http://logo.example/sky.png',
    'group-title': 'Sport',
  });
  t.equal(sky!.url, `acestream://${A}`);
  t.equal(sky!.extinf, LIST.split('\r\n')[2], 'raw #EXTINF line, no CR');
  t.same(sky!.extra, ['#EXTVLCOPT:http-user-agent=Mozilla/5.0 (X11; Linux)', '#EXTGRP:Sport']);
  t.equal(sky!.line, 6);
  t.same(bbc!.attrs, { 'tvg-id': 'bbc1.uk', 'group-title': 'News' }, 'attribute names lowercased, unquoted values');
  t.equal(bbc!.name, 'BBC One');
  t.equal(eng!.name, 'Engine link');
  t.equal(bare!.name, '', 'a URL without #EXTINF');
  t.equal(bare!.extinf, '');
  t.same(bare!.attrs, {});
  t.equal(spaced!.name, 'Spaced name', 'the dangling #EXTINF is dropped; the next one names the URL');
  t.same(spaced!.attrs, { 'tvg-name': 'Single quoted', 'group-title': 'A b' });
  t.same(parseM3u(LIST), p.entries);
});

t.test('line endings and missing header', async (t) => {
  const lf = parsePlaylist(`#EXTINF:-1,One\nhttp://a/1\n#EXTINF:-1,Two\rhttp://a/2\r\n`);
  t.equal(lf.header, '');
  t.same(lf.headerAttrs, {});
  t.same(
    lf.entries.map((e) => [e.name, e.url, e.line]),
    [
      ['One', 'http://a/1', 2],
      ['Two', 'http://a/2', 4],
    ],
  );
  t.same(parseM3u(''), []);
  t.same(parseM3u('#EXTM3U\n#EXTINF:-1,Nothing after'), [], 'a trailing #EXTINF without URL is dropped');
  t.same(splitLines('\uFEFFa\r\nb\rc\nd'), ['a', 'b', 'c', 'd']);
  const twice = parsePlaylist('#EXTM3U a="1"\n#EXTINF:-1,X\nhttp://x\n#EXTM3U a="2"\n#EXTINF:-1,Y\nhttp://y\n');
  t.same(twice.headerAttrs, { a: '1' }, 'a second header (concatenated lists) is ignored');
  t.equal(twice.entries.length, 2);
});

t.test('#EXTINF edge cases', async (t) => {
  t.same(parseExtinf('#EXTINF:-1,Plain'), { duration: -1, attrs: {}, name: 'Plain' });
  t.same(parseExtinf('#EXTINF:10.5 a="x,y" b=z,Name, with, commas'), {
    duration: 10.5,
    attrs: { a: 'x,y', b: 'z' },
    name: 'Name, with, commas',
  });
  t.same(parseExtinf('#EXTINF:-1 tvg-id="x"'), { duration: -1, attrs: { 'tvg-id': 'x' }, name: '' }, 'no comma, no name');
  t.same(parseExtinf('#EXTINF:-1 tvg-id="x",'), { duration: -1, attrs: { 'tvg-id': 'x' }, name: '' });
  t.same(
    parseExtinf('#EXTINF:-1 Just a name'),
    { duration: -1, attrs: {}, name: 'Just a name' },
    'no comma and no attributes: the rest is the name',
  );
  t.same(parseExtinf('#EXTINF:-1 junk here,Name'), { duration: -1, attrs: {}, name: 'Name' }, 'junk before the comma');
  t.same(parseExtinf('#EXTINF:,Nameless duration').name, 'Nameless duration');
  t.ok(Number.isNaN(parseExtinf('#EXTINF:,X').duration));
  t.same(parseExtinf('#EXTINF:-1 a="unclosed,Name').attrs, { a: 'unclosed' }, 'an unclosed quote stops at the comma');
  t.equal(parseExtinf('#EXTINF:-1 a="unclosed,Name').name, 'Name');
  t.same(parseExtinf('#EXTINF:-1 a="1" A="2",N').attrs, { a: '1' }, 'first of two same-named attributes wins');
  t.same(parseExtinf('#EXTINF:-1 tvg-name="He said \'hi\'",N').attrs, { 'tvg-name': "He said 'hi'" });
  t.same(parseExtinf('#EXTINF:-1 empty="" next="v",N').attrs, { empty: '', next: 'v' });
});

t.test('contentIdOf recognises AceStream links', async (t) => {
  const id = (value: string) => ({ name: 'id', value });
  const ih = (value: string) => ({ name: 'infohash', value });
  t.same(contentIdOf(`acestream://${A}`), id(A));
  t.same(contentIdOf(`ACESTREAM://${UPPER}`), id(UPPER.toLowerCase()), 'scheme and hex case-insensitive, hex lowercased');
  t.same(contentIdOf(`  acestream://${A}/  `), id(A), 'surrounding space and a trailing slash');
  t.same(contentIdOf(`acestream://?infohash=${B}`), ih(B));
  t.same(contentIdOf(`acestream://?content_id=${UPPER}`), id(UPPER.toLowerCase()));
  t.same(contentIdOf(`http://127.0.0.1:6878/ace/getstream?id=${A}`), id(A));
  t.same(contentIdOf(`https://engine.example/ace/getstream?content_id=${A}&pid=1`), id(A));
  t.same(contentIdOf(`http://[::1]:6878/ace/getstream?infohash=${UPPER}`), ih(UPPER.toLowerCase()));
  t.same(contentIdOf(`http://10.0.0.2:8000/ace/manifest.m3u8?id=${B}`), id(B));
  t.same(contentIdOf(`HTTP://host/ACE/GETSTREAM?id=${A}`), id(A));
  t.same(contentIdOf(`http://host/ace/getstream?pid=1&infohash=${B}`), ih(B));
  for (const bad of [
    '',
    'acestream://',
    `acestream://${A}0`,
    `acestream://${A.slice(1)}`,
    `acestream://${A.slice(1)}g`,
    `acestream://?infohash=${A.slice(2)}`,
    `acestream://?foo=${A}`,
    `http://host/ace/getstream?id=xyz`,
    `http://host/ace/getstream`,
    `http://host/other?id=${A}`,
    `http://host/ace/getstream/extra?id=${A}`,
    `ftp://host/ace/getstream?id=${A}`,
    `rtmp://x/${A}`,
    `http://plain.example/live.m3u8`,
    A,
    'http://[bad/ace/getstream?id=' + A,
  ])
    t.equal(contentIdOf(bad), null, bad || '(empty)');
});
