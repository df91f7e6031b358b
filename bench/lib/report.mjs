// Markdown rendering of a bench run (results.json shape, see bench/README.md).

/** @param {any} x @param {number} [d] */
const f = (x, d = 1) => (x === null || x === undefined ? '–' : typeof x === 'number' ? x.toFixed(d) : String(x));
/** @param {{n:number,p50:number|null,p99:number|null,max?:number|null}|null|undefined} h @param {boolean} [withMax] */
const q = (h, withMax = false) => (h && h.n ? `${f(h.p50)} / ${f(h.p99)}${withMax ? ` / ${f(h.max)}` : ''}` : '–');

/** @param {string[]} head @param {any[][]} rows */
function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** @param {any} results */
export function renderMarkdown(results) {
  const out = [`# acemux bench ${results.meta.startedAt}${results.meta.quick ? ' (quick)' : ''}`, ''];
  for (const run of results.runs) out.push(`- **${run.label}**: \`${run.command}\``);
  const m = results.meta;
  out.push(
    `- node ${m.node}, ${m.cpus} CPUs, load average ${m.loadavgStart.join(' ')} → ${m.loadavgEnd.join(' ')}, simulator \`${m.sim}\`, ${m.totalS} s`,
    '',
  );

  const rows = [];
  for (const name of results.meta.scenarios)
    for (const run of results.runs) {
      const s = run.scenarios[name];
      if (!s) continue;
      if (s.error) {
        rows.push([name, run.label, `ERROR: ${s.error.replace(/\|/g, '/')}`, ...Array(14).fill('')]);
        continue;
      }
      rows.push([
        name,
        run.label,
        s.clients,
        f(s.expectedMBps, 2),
        f(s.deliveredMBps, 2),
        f(s.deliveredPct),
        f(s.cpuSPerGB, 2),
        run.floor ? '1' : f(s.cpuVsFloor, 2),
        f(s.proxyCpuPct, 0),
        f(s.peakRssMiB, 0),
        q(s.firstByteMs),
        `${s.firstByteMisaligned}/${s.firstByteAligned + s.firstByteMisaligned}`,
        q(s.latencyMs, true),
        s.resyncs,
        `${s.seqJumps} (${s.lostPackets})`,
        s.errors + s.ended,
        `${f(s.clientCpuPct, 0)} / ${f(s.simCpuPct, 0)}`,
      ]);
    }
  out.push(
    table(
      [
        'scenario',
        'proxy',
        'clients',
        'expected MB/s',
        'delivered MB/s',
        'delivered %',
        'CPU s/GB',
        'CPU ÷ floor',
        'proxy CPU %',
        'peak RSS MiB',
        'first byte p50/p99 ms',
        'first byte misaligned',
        'latency p50/p99/max ms',
        'resyncs',
        'seq gaps (lost pkts)',
        'errors',
        'client / sim CPU %',
      ],
      rows,
    ),
    '',
  );

  for (const run of results.runs) {
    const sc = run.scenarios;
    const notes = [];
    for (const [name, s] of Object.entries(sc))
      if (s.proxyDied) notes.push(`**${name}: the proxy exited during the scenario (${s.proxyDied})**`);
    for (const name of ['fanout-20x10', 'fanout-1x50-unthrottled']) {
      const w = sc[name]?.wholeRun;
      if (w)
        notes.push(
          `${name}, whole run (the streams' starts, warm-up and window, ${f(w.seconds)} s): ${f(w.proxyCpuS, 2)} CPU s for ${f(w.deliveredGB, 2)} GB = ${f(w.cpuSPerGB, 2)} s/GB${w.cpuVsFloor ? ` = ${f(w.cpuVsFloor, 2)}× the floor` : ''}`,
        );
    }
    const ch = sc.churn?.extra;
    if (ch)
      notes.push(
        `churn: ${ch.starts} starts (${ch.startsWithData} with data, ${ch.errors} errors), ${f(ch.cpuMsPerStart, 2)} ms CPU per start and its 1.5 s of streaming${ch.startCostMs !== undefined ? ` (floor ${f(ch.floorCpuMsPerStart, 2)} ms → **${f(ch.startCostMs, 2)} ms per start**)` : ''}${ch.coldRings ? `; cold rings ${f(ch.coldRings.cpuMsPerStart, 2)} ms${ch.coldRings.startCostMs !== undefined ? ` (→ ${f(ch.coldRings.startCostMs, 2)} ms per start)` : ''}` : ''}; RSS idle ${f(ch.idleMiB)} MiB${ch.perRunningStreamMiB !== undefined ? `, ${f(ch.perRunningStreamMiB, 2)} MiB per running stream` : ''}, grew ${f(ch.rssGrowthMiB)} MiB over the churn`,
      );
    const j = sc.joins?.extra;
    if (j)
      notes.push(
        `joins: ${j.joiners} joiners, ${j.joinersWithData} got data; first byte p50/p99 ${q(sc.joins.firstByteMs)} ms, misaligned ${sc.joins.firstByteMisaligned}/${sc.joins.firstByteAligned + sc.joins.firstByteMisaligned}; joiners' latency p50/p99/max ${q(j.joinerLatencyMs, true)} ms`,
      );
    const st = sc['stalled-client']?.extra;
    if (st)
      notes.push(
        `stalled-client: other 9 clients' latency p50/p99/max ${q(st.withStall.latencyMs, true)} ms with the stalled client vs ${q(st.withoutStall.latencyMs, true)} ms without; delivered ${f(st.withStall.deliveredPct)} % vs ${f(st.withoutStall.deliveredPct)} %; proxy RSS grew ${f(st.rssGrowthMiB)} MiB during the window; stalled client still connected at the end: ${st.stalledClientStillConnected}`,
      );
    const m = sc.memory?.extra;
    if (m)
      notes.push(
        `memory: idle ${f(m.idleMiB)} MiB, 1 stream ${f(m.oneStreamMiB)} MiB, ${m.points.map((/** @type {any} */ p) => `${p.clients} clients ${f(p.rssMiB)}`).join(', ')} MiB → ${f(m.perClientKiB, 0)} KiB per client; 10 streams ${f(m.tenStreamsMiB)} MiB → ${f(m.perStreamKiB, 0)} KiB per extra stream`,
      );
    const r = sc.ramp?.extra;
    if (r)
      notes.push(
        `ramp: max clients passed ${r.maxClientsPassed} (stopped: ${r.stopReason}); steps ${r.steps.map((/** @type {any} */ s) => `${s.clients}${s.pass ? '✓' : '✗'} (p99 ${f(s.latencyMs.p99)} ms, ${f(s.deliveredPct)} %, client CPU ${f(s.clientCpuPct, 0)} %)`).join(', ')}`,
      );
    if (notes.length) out.push(`### ${run.label}`, '', ...notes.map((n) => `- ${n}`), '');
  }

  if (results.ratios) {
    out.push(
      `### ${results.runs[0].label} ÷ ${results.runs[1].label}`,
      '',
      '(below 1 = the first proxy needs less / is faster; for delivered and max clients above 1 is better)',
      '',
    );
    const rrows = Object.entries(results.ratios).map(([name, r]) => [
      name,
      f(r.deliveredMBps, 2),
      f(r.cpuSPerGB, 2),
      f(r.peakRssMiB, 2),
      f(r.firstByteP99, 2),
      f(r.latencyP99, 2),
      f(r.latencyMax, 2),
      f(r.maxClientsPassed, 2),
    ]);
    out.push(
      table(
        ['scenario', 'delivered MB/s', 'CPU s/GB', 'peak RSS', 'first byte p99', 'latency p99', 'latency max', 'ramp max clients'],
        rrows,
      ),
      '',
    );
  }
  return out.join('\n');
}
