/** How a stream looks from outside: /ace/status, the admin API and the dashboard share this view. */
import { TS } from '../../shared/ring';
import type { Stream } from '../supervision/supervisor';
import { hlsSummary } from '../hls/hls';

/** acexy's fields (clients, stream_id, stat_url) first, then ours. */
export function describe(s: Stream): Record<string, unknown> {
  const eg = s.egress;
  const st = s.stats;
  const uptime = (Date.now() - s.createdAt) / 1000;
  return {
    clients: eg.clients.length,
    stream_id: s.selector.value,
    stat_url: s.session?.statUrl ?? null,
    state: s.state,
    selector: s.selector.name,
    channel: s.channel?.name ?? null,
    attempts: s.attempts,
    switches: s.switches,
    actor_restarts: s.life,
    engine: s.session?.engine ?? null,
    pid: s.session?.pid ?? null,
    uptime_s: Math.round(uptime * 10) / 10,
    bytes_in: st.bytesIn,
    bytes_out: eg.bytesOut,
    avg_write_bytes: eg.writes ? Math.round(eg.bytesOut / eg.writes) : 0,
    bitrate: st.bitrate,
    video_codec: st.videoCodec,
    join_points: st.joinPoints,
    junk_bytes: st.junkBytes,
    null_packets: st.nullPacketsSent,
    ring_bytes: eg.ring.cap * TS, // as grown so far (ring.ts I7)
    ring_max_bytes: eg.ring.maxCap * TS,
    skips: eg.skips,
    cuts: eg.cuts,
    engine_stat: s.stat,
    engine_stat_error: s.statError,
    last_fault: s.lastFault,
    hls: hlsSummary(s),
    client_list: eg.clients.map((c) => ({
      id: c.info.id,
      remote: c.info.remote,
      since: new Date(c.since).toISOString(),
      bytes: c.bytes,
      lag_bytes: eg.lagBytes(c),
      skips: c.skips,
      user_agent: c.info.ua ?? null,
    })),
  };
}
