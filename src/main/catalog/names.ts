/**
 * Display names for streams, for the dashboard and the admin API: a channel's name, else the
 * #EXTINF title the source playlist (or the channels file) gives the stream's id. Operators know
 * "Sport 1", not a 40-character id.
 *
 * Invariants:
 * - The first name learnt for an id stands (the channels file is read before the playlist), so a
 *   name never flips between refreshes.
 * - Lookups take stream keys as the supervisor builds them: `channel=<slug>` or
 *   `id=<hex>[&extra…]` / `infohash=<hex>[&extra…]`.
 */
import { parseM3u, contentIdOf } from './m3u';
import type { Channel } from './channels';

/** Names longer than this are cut: they come from files and URLs outside our control. */
const MAX_NAME = 120;

export class StreamNames {
  private readonly byId = new Map<string, string>();
  private readonly bySlug = new Map<string, string>();

  addChannels(channels: Iterable<Channel>): void {
    for (const ch of channels) {
      if (!this.bySlug.has(ch.slug)) this.bySlug.set(ch.slug, clean(ch.name));
      for (const id of ch.ids) this.learn(id.value, ch.name);
    }
  }

  /** Learns the #EXTINF titles of an M3U text's AceStream entries. */
  addPlaylist(text: string): void {
    for (const e of parseM3u(text)) {
      const id = contentIdOf(e.url);
      const name = e.name || e.attrs['tvg-name'] || '';
      if (id && name) this.learn(id.value, name);
    }
  }

  /** The name for a stream key, or undefined. */
  ofKey(key: string): string | undefined {
    const ch = /^channel=(.+)$/.exec(key);
    if (ch) return this.bySlug.get(ch[1]!);
    const id = /^(?:id|infohash)=([0-9a-fA-F]{40})(?:&|$)/.exec(key);
    return id ? this.byId.get(id[1]!.toLowerCase()) : undefined;
  }

  /** The name for a bare id, or undefined. */
  ofId(id: string): string | undefined {
    return this.byId.get(id.toLowerCase());
  }

  private learn(id: string, name: string): void {
    const v = id.toLowerCase();
    if (!this.byId.has(v) && clean(name)) this.byId.set(v, clean(name));
  }
}

function clean(name: string): string {
  const s = name.replace(/\s+/g, ' ').trim();
  return s.length > MAX_NAME ? `${s.slice(0, MAX_NAME - 1)}…` : s;
}
