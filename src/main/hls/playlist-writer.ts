/**
 * Writes an HLS media playlist (RFC 8216) for a live sliding window. Pure: segments in, text out.
 *
 *  P1 EXT-X-DISCONTINUITY-SEQUENCE is the discontinuity sequence number of the first listed
 *     segment before its own tag, so a segment's number (that value plus the tags up to and
 *     including its own) is the same in every playlist that lists it.
 *  P2 No EXT-X-ENDLIST: the stream is live until it stops; then the playlist is gone (404/502).
 */
import type { Segment } from './segmenter';

export interface PlaylistInput {
  segments: readonly Segment[];
  targetDuration: number;
  /** URI of segment seq, relative to the playlist's own URL. */
  uri: (seq: number) => string;
}

export function writePlaylist(p: PlaylistInput): string {
  const first = p.segments[0];
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', `#EXT-X-TARGETDURATION:${p.targetDuration}`, `#EXT-X-MEDIA-SEQUENCE:${first?.seq ?? 0}`];
  if (first) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${first.dseq - (first.discontinuity ? 1 : 0)}`); // P1
  for (const s of p.segments) {
    if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(Math.round(s.pdtMs)).toISOString()}`);
    lines.push(`#EXTINF:${s.durationS.toFixed(3)},`);
    lines.push(p.uri(s.seq));
  }
  return lines.join('\n') + '\n';
}
