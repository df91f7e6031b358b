import t from 'tap';
import { StreamNames } from '../src/main/catalog/names';
import { parseChannels } from '../src/main/catalog/channels';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

t.test('names by stream key: channel, then playlist title; the first name stands', async (t) => {
  const names = new StreamNames();
  names.addChannels(
    parseChannels(
      `#EXTM3U\n#EXTINF:-1 tvg-id="s",Sport 1\nacestream://${A}\n#EXTINF:-1 tvg-id="s",Sport 1 HD\nacestream://${B}\n`,
      'm3u',
    ).channels.values(),
  );
  names.addPlaylist(
    `#EXTM3U\n#EXTINF:-1,Other name\nacestream://${A}\n#EXTINF:-1 tvg-name="From tvg-name",\nacestream://?infohash=${C}\n#EXTINF:-1,No id\nhttp://x/y.ts\n`,
  );
  t.equal(names.ofKey('channel=sport-1'), 'Sport 1');
  t.equal(names.ofKey(`id=${A}`), 'Sport 1', 'the channels file was first');
  t.equal(names.ofKey(`id=${B}`), 'Sport 1', "an alternate carries its channel's name");
  t.equal(names.ofKey(`infohash=${C}`), 'From tvg-name', 'tvg-name when the title is empty');
  t.equal(names.ofKey(`id=${C.toUpperCase()}&lang=en`), 'From tvg-name', 'extra parameters and case do not matter');
  t.equal(names.ofId(C.toUpperCase()), 'From tvg-name');
  t.equal(names.ofKey('channel=nope'), undefined);
  t.equal(names.ofKey('id=xyz'), undefined);
  const long = new StreamNames();
  long.addPlaylist(`#EXTINF:-1,${'x'.repeat(500)}\n  \t\nacestream://${A}\n`);
  t.equal(long.ofId(A)!.length, 120, 'outside text is cut');
});
