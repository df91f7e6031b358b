// Two small hand-written SVG charts (no dependencies): a line chart and a grouped bar chart.

const W = 720,
  H = 400,
  L = 70,
  R = 160,
  TOP = 40,
  B = 60;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
/** @param {string} s */
const esc = (s) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);

/** "Nice" tick values covering [0, max]. @param {number} max */
function ticks(max) {
  if (!(max > 0)) return [0, 1];
  const step0 = max / 5;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? 10 * mag;
  const out = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/** @param {string} title @param {string} xLabel @param {string} yLabel @param {string} body @param {{name:string}[]} series */
function frame(title, xLabel, yLabel, body, series) {
  const legend = series
    .map(
      (s, k) =>
        `<rect x="${W - R + 15}" y="${TOP + k * 22}" width="14" height="14" fill="${COLORS[k % COLORS.length]}"/><text x="${W - R + 35}" y="${TOP + 12 + k * 22}">${esc(s.name)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>
<text x="${L + (W - L - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>
<text transform="translate(16 ${TOP + (H - TOP - B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>
${body}${legend}
</svg>
`;
}

/** Horizontal grid + y axis labels. @param {number[]} ys @param {(v:number)=>number} py */
const yGrid = (ys, py) =>
  ys
    .map(
      (v) =>
        `<line x1="${L}" x2="${W - R}" y1="${py(v)}" y2="${py(v)}" stroke="#ddd"/><text x="${L - 6}" y="${py(v) + 4}" text-anchor="end">${v}</text>`,
    )
    .join('');

/**
 * @param {{title:string, xLabel:string, yLabel:string, series:{name:string, points:[number, number][]}[], hline?:{y:number, label:string}}} o
 */
export function lineChart(o) {
  const pts = o.series.flatMap((s) => s.points);
  const xs = ticks(Math.max(1, ...pts.map((p) => p[0])));
  const ys = ticks(Math.max(o.hline?.y ?? 0, ...pts.map((p) => p[1])) * 1.05);
  const px = (/** @type {number} */ x) => L + (x / xs[xs.length - 1]) * (W - L - R);
  const py = (/** @type {number} */ y) => H - B - (y / ys[ys.length - 1]) * (H - TOP - B);
  let body = yGrid(ys, py);
  body += xs.map((v) => `<text x="${px(v)}" y="${H - B + 16}" text-anchor="middle">${v}</text>`).join('');
  body += `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#000"/><line x1="${L}" x2="${L}" y1="${TOP}" y2="${H - B}" stroke="#000"/>`;
  if (o.hline)
    body += `<line x1="${L}" x2="${W - R}" y1="${py(o.hline.y)}" y2="${py(o.hline.y)}" stroke="#888" stroke-dasharray="6 4"/><text x="${W - R - 4}" y="${py(o.hline.y) - 4}" text-anchor="end" fill="#666">${esc(o.hline.label)}</text>`;
  o.series.forEach((s, k) => {
    const c = COLORS[k % COLORS.length];
    body += `<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(' ')}"/>`;
    body += s.points
      .map(
        (p) => `<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3" fill="${c}"><title>${p[0]}: ${p[1]}</title></circle>`,
      )
      .join('');
  });
  return frame(o.title, o.xLabel, o.yLabel, body, o.series);
}

/**
 * @param {{title:string, yLabel:string, categories:string[], series:{name:string, values:(number|null)[]}[]}} o
 */
export function barChart(o) {
  const ys = ticks(Math.max(0, ...o.series.flatMap((s) => s.values.map((v) => v ?? 0))) * 1.05);
  const py = (/** @type {number} */ y) => H - B - (y / ys[ys.length - 1]) * (H - TOP - B);
  const slot = (W - L - R) / Math.max(1, o.categories.length);
  const bw = (slot * 0.8) / Math.max(1, o.series.length);
  let body = yGrid(ys, py);
  body += `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#000"/><line x1="${L}" x2="${L}" y1="${TOP}" y2="${H - B}" stroke="#000"/>`;
  o.categories.forEach((cat, i) => {
    const x0 = L + i * slot + slot * 0.1;
    const cx = L + i * slot + slot / 2;
    body += `<text y="${H - B + 14}" text-anchor="middle" font-size="10">${cat
      .split('-')
      .map((part, k) => `<tspan x="${cx}" dy="${k ? 11 : 0}">${esc(part)}</tspan>`)
      .join('')}</text>`;
    o.series.forEach((s, k) => {
      const v = s.values[i];
      if (v === null || v === undefined) return;
      body += `<rect x="${(x0 + k * bw).toFixed(1)}" y="${py(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(H - B - py(v)).toFixed(1)}" fill="${COLORS[k % COLORS.length]}"><title>${esc(s.name)} ${esc(cat)}: ${v}</title></rect>`;
      body += `<text x="${(x0 + k * bw + bw / 2).toFixed(1)}" y="${(py(v) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${v}</text>`;
    });
  });
  return frame(o.title, '', o.yLabel, body, o.series);
}
