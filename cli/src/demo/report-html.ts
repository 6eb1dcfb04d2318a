import type { CompanyReport, DemoReport } from './report.js';

const PALETTE = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d', '#dc2626'];
const SETTINGS = [
  { key: 'localOnly', label: 'local only', color: '#9ca3af' },
  { key: 'federated', label: 'federated (shared)', color: '#2563eb' },
  { key: 'personalized', label: 'personalized', color: '#059669' },
  { key: 'centralized', label: 'centralized (pooled)', color: '#111827' },
] as const;

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-');
const pts = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} pts`;

/** Bytes in KiB / MiB / GiB with three significant digits. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

function niceRange(lo: number, hi: number): [number, number] {
  const a = Math.max(0, Math.floor(lo * 10) / 10);
  const b = Math.min(1, Math.ceil(hi * 10) / 10);
  return a === b ? [Math.max(0, a - 0.1), Math.min(1, b + 0.1)] : [a, b];
}

/** One company's accuracy per round, with its local-only (dashed) and centralized (dotted) levels. */
function roundChart(r: DemoReport, c: CompanyReport, color: string): string {
  const W = 520;
  const H = 230;
  const L = 42;
  const R = 12;
  const T = 26;
  const B = 30;
  const series: [number, number][] = [[0, c.baseOnly.accuracy], ...r.rounds.map((x) => [x.number, x.accuracy[c.name] ?? NaN] as [number, number])];
  const values = [...series.map((s) => s[1]), c.localOnly.accuracy, c.centralized.accuracy, c.personalized.accuracy].filter(Number.isFinite);
  const [lo, hi] = niceRange(Math.min(...values), Math.max(...values));
  const maxX = Math.max(1, r.rounds.length);
  const x = (v: number): number => L + ((W - L - R) * v) / maxX;
  const y = (v: number): number => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  const grid: string[] = [];
  for (let g = lo; g <= hi + 1e-9; g += 0.1) grid.push(`<line x1="${L}" x2="${W - R}" y1="${y(g)}" y2="${y(g)}" class="grid"/><text x="${L - 6}" y="${y(g) + 4}" class="tick" text-anchor="end">${Math.round(g * 100)}%</text>`);
  const step = Math.max(1, Math.ceil(maxX / 10));
  for (let i = 0; i <= maxX; i += step) grid.push(`<text x="${x(i)}" y="${H - B + 16}" class="tick" text-anchor="middle">${i}</text>`);
  const line = series.filter((s) => Number.isFinite(s[1])).map((s, i) => `${i === 0 ? 'M' : 'L'}${x(s[0]).toFixed(1)},${y(s[1]).toFixed(1)}`).join(' ');
  const dots = series.filter((s) => Number.isFinite(s[1])).map((s) => `<circle cx="${x(s[0]).toFixed(1)}" cy="${y(s[1]).toFixed(1)}" r="2.6" fill="${color}"><title>round ${s[0]}: ${pct(s[1])}</title></circle>`).join('');
  // Local-only is labelled on the left and centralized on the right, so equal levels stay readable.
  const ref = (v: number, cls: string, label: string, left: boolean): string =>
    `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" class="${cls}"/><text x="${left ? L + 4 : W - R - 2}" y="${y(v) - 4}" class="reflabel" text-anchor="${left ? 'start' : 'end'}">${label} ${pct(v)}</text>`;
  const pers = `<rect x="${x(maxX) - 4}" y="${y(c.personalized.accuracy) - 4}" width="8" height="8" fill="#059669" transform="rotate(45 ${x(maxX)} ${y(c.personalized.accuracy)})"><title>personalized ${pct(c.personalized.accuracy)}</title></rect>`;
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(c.name)} accuracy per round">
<text x="${L}" y="16" class="ctitle">${esc(c.name)}</text>
${grid.join('')}
${ref(c.localOnly.accuracy, 'ref-local', 'local only', true)}
${ref(c.centralized.accuracy, 'ref-central', 'centralized', false)}
<path d="${line}" fill="none" stroke="${color}" stroke-width="2.2"/>${dots}${pers}
<text x="${(L + W - R) / 2}" y="${H - 2}" class="tick" text-anchor="middle">round</text>
</svg>`;
}

/** Grouped bars: per company, local-only vs federated vs personalized vs centralized. */
function comparisonChart(r: DemoReport): string {
  const n = r.companies.length;
  const groupW = Math.max(150, Math.floor(1000 / Math.max(1, n)));
  const barW = 26;
  const L = 44;
  const T = 16;
  const H = 250;
  const B = 44;
  const W = L + n * groupW + 10;
  const values = r.companies.flatMap((c) => SETTINGS.map((s) => c[s.key].accuracy));
  const lo = Math.max(0, Math.floor((Math.min(...values) - 0.05) * 10) / 10);
  const y = (v: number): number => T + (H - T - B) * (1 - (v - lo) / (1 - lo));
  const parts: string[] = [];
  for (let g = lo; g <= 1 + 1e-9; g += 0.1) parts.push(`<line x1="${L}" x2="${W - 10}" y1="${y(g)}" y2="${y(g)}" class="grid"/><text x="${L - 6}" y="${y(g) + 4}" class="tick" text-anchor="end">${Math.round(g * 100)}%</text>`);
  r.companies.forEach((c, i) => {
    const gx = L + i * groupW + (groupW - SETTINGS.length * barW) / 2;
    SETTINGS.forEach((s, j) => {
      const v = c[s.key].accuracy;
      const bx = gx + j * barW;
      parts.push(`<rect x="${bx + 2}" y="${y(v)}" width="${barW - 4}" height="${Math.max(0, y(lo) - y(v))}" fill="${s.color}"><title>${esc(c.name)} ${s.label}: ${pct(v)}</title></rect>`);
      parts.push(`<text x="${bx + barW / 2}" y="${y(v) - 3}" class="barval" text-anchor="middle">${Math.round(100 * v)}</text>`);
    });
    parts.push(`<text x="${L + i * groupW + groupW / 2}" y="${H - B + 16}" class="label" text-anchor="middle">${esc(c.name)}</text>`);
    parts.push(`<text x="${L + i * groupW + groupW / 2}" y="${H - B + 31}" class="tick" text-anchor="middle">${pts(c.gain)} vs local</text>`);
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="accuracy by setting">${parts.join('')}</svg>`;
}

/** Horizontal bars of one figure per company. */
function hbars(rows: { label: string; values: { v: number; color: string; text: string; name: string }[] }[], width = 640): string {
  const rowH = 18;
  const gap = 14;
  const L = 110;
  const R = 110;
  const max = Math.max(1e-12, ...rows.flatMap((r) => r.values.map((v) => v.v)));
  const H = rows.reduce((h, r) => h + r.values.length * rowH + gap, 4);
  const parts: string[] = [];
  let yy = 4;
  for (const r of rows) {
    parts.push(`<text x="${L - 8}" y="${yy + (r.values.length * rowH) / 2 + 4}" class="label" text-anchor="end">${esc(r.label)}</text>`);
    for (const v of r.values) {
      const w = ((width - L - R) * v.v) / max;
      parts.push(`<rect x="${L}" y="${yy + 2}" width="${Math.max(1, w)}" height="${rowH - 4}" fill="${v.color}"><title>${esc(r.label)} ${esc(v.name)}: ${esc(v.text)}</title></rect><text x="${L + w + 6}" y="${yy + rowH - 5}" class="tick">${esc(v.name)} ${esc(v.text)}</text>`);
      yy += rowH;
    }
    yy += gap;
  }
  return `<svg viewBox="0 0 ${width} ${H}" width="${width}" height="${H}" role="img">${parts.join('')}</svg>`;
}

/** A value axis from `lo` to `hi` with about five round ticks (lo may be negative). */
function ticks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  for (let k = first; k <= last; k++) out.push(k === 0 ? 0 : k * step);
  return out;
}

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const fmt = (v: number): string => (Math.abs(v) < 1e-9 ? '0' : Number.isInteger(v) ? String(v) : Math.abs(v) >= 10 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toFixed(2));

/** Lines over rounds, one per company, on a shared value axis (with a zero line when values go negative). */
function lineChart(title: string, series: { name: string; color: string; points: [number, number][] }[], maxX: number, format: (v: number) => string = fmt, W = 520, H = 230): string {
  const L = 46;
  const R = 12;
  const T = 30;
  const B = 30;
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const ts = ticks(Math.min(0, ...values), Math.max(1e-9, ...values));
  const lo = ts[0]!;
  const hi = ts.at(-1)!;
  const x = (v: number): number => L + ((W - L - R) * v) / Math.max(1, maxX);
  const y = (v: number): number => T + (H - T - B) * (1 - (v - lo) / (hi - lo || 1));
  const parts = ts.map((g) => `<line x1="${L}" x2="${W - R}" y1="${y(g)}" y2="${y(g)}" class="${g === 0 && lo < 0 ? 'zero' : 'grid'}"/><text x="${L - 6}" y="${y(g) + 4}" class="tick" text-anchor="end">${format(g)}</text>`);
  const step = Math.max(1, Math.ceil(maxX / 10));
  for (let i = 0; i <= maxX; i += step) parts.push(`<text x="${x(i)}" y="${H - B + 16}" class="tick" text-anchor="middle">${i}</text>`);
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    parts.push(`<path d="${pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(pts.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.4" fill="${s.color}"><title>${esc(s.name)} round ${p[0]}: ${format(p[1])}</title></circle>`).join(''));
  }
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}"><text x="${L}" y="16" class="ctitle">${esc(title)}</text>${parts.join('')}<text x="${(L + W - R) / 2}" y="${H - 2}" class="tick" text-anchor="middle">round</text></svg>`;
}

/** Bars per round, one per company side by side (negative values hang below the zero line). */
function roundBars(title: string, rounds: { number: number; values: Record<string, number> }[], names: readonly string[], color: (i: number) => string, format: (v: number) => string = fmt, W = 520, H = 230): string {
  const L = 46;
  const R = 12;
  const T = 30;
  const B = 30;
  const values = rounds.flatMap((r) => names.map((n) => r.values[n] ?? 0));
  const ts = ticks(Math.min(0, ...values), Math.max(1e-9, ...values));
  const lo = ts[0]!;
  const hi = ts.at(-1)!;
  const y = (v: number): number => T + (H - T - B) * (1 - (v - lo) / (hi - lo || 1));
  const groupW = (W - L - R) / Math.max(1, rounds.length);
  const barW = Math.max(1.5, (groupW - 4) / Math.max(1, names.length));
  const parts = ts.map((g) => `<line x1="${L}" x2="${W - R}" y1="${y(g)}" y2="${y(g)}" class="${g === 0 ? 'zero' : 'grid'}"/><text x="${L - 6}" y="${y(g) + 4}" class="tick" text-anchor="end">${format(g)}</text>`);
  rounds.forEach((r, i) => {
    const gx = L + i * groupW + 2;
    names.forEach((n, j) => {
      const v = r.values[n] ?? 0;
      parts.push(`<rect x="${(gx + j * barW).toFixed(1)}" y="${Math.min(y(v), y(0)).toFixed(1)}" width="${(barW - 0.6).toFixed(1)}" height="${Math.abs(y(0) - y(v)).toFixed(1)}" fill="${color(j)}"><title>${esc(n)} round ${r.number}: ${format(v)}</title></rect>`);
    });
    parts.push(`<text x="${(gx + groupW / 2 - 2).toFixed(1)}" y="${H - B + 16}" class="tick" text-anchor="middle">${r.number}</text>`);
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}"><text x="${L}" y="16" class="ctitle">${esc(title)}</text>${parts.join('')}<text x="${(L + W - R) / 2}" y="${H - 2}" class="tick" text-anchor="middle">round</text></svg>`;
}

function legend(items: { label: string; color: string; style?: string }[]): string {
  return `<div class="legend">${items.map((i) => `<span><i style="background:${i.color};${i.style ?? ''}"></i>${esc(i.label)}</span>`).join('')}</div>`;
}

/** The self-contained HTML report: inline SVG and CSS, no script, no external resources. */
export function renderReportHtml(r: DemoReport): string {
  const s = r.summary;
  const color = (i: number): string => PALETTE[i % PALETTE.length]!;
  const cards = [
    ['local only', pct(s.meanLocalOnly), 'mean over companies'],
    ['federated (shared)', pct(s.meanFederated), `${pts(s.meanFederated - s.meanLocalOnly)} vs local`],
    ['personalized', pct(s.meanPersonalized), `${pts(s.meanPersonalized - s.meanLocalOnly)} vs local`],
    ['centralized', pct(s.meanCentralized), s.federatedGapToCentralized >= 0 ? `shared model ${(100 * s.federatedGapToCentralized).toFixed(1)} pts below` : `shared model ${(-100 * s.federatedGapToCentralized).toFixed(1)} pts above`],
    ['bytes moved', humanBytes(r.bytes.up + r.bytes.down), `${humanBytes(r.bytes.up)} up, ${humanBytes(r.bytes.down)} down`],
    privacyCard(r),
    ['run time', `${(r.timings['total'] ?? 0).toFixed(0)} s`, `${r.rounds.length} rounds, ${r.companies.length} companies`],
  ];
  const verdict = s.everyCompanyGains
    ? `<p class="ok">Every company gains from joining: its better federated model (shared or personalized) beats what it reaches alone.</p>`
    : `<p class="warn">Not every company gains: see the table for the ones whose federated accuracy does not beat local-only.</p>`;
  const rows = r.companies.map((c, i) => `<tr><td><i class="sw" style="background:${color(i)}"></i>${esc(c.name)}</td><td>${c.trainSamples} / ${c.testSamples}</td><td>${esc(c.modalities.join(', '))}</td>
<td>${pct(c.localOnly.accuracy)}</td><td>${pct(c.federated.accuracy)}</td><td>${pct(c.personalized.accuracy)}</td><td>${pct(c.centralized.accuracy)}</td>
<td class="${c.gain > 0 ? 'pos' : 'neg'}">${pts(c.gain)}</td><td>${humanBytes(c.cost.bytesSent)}</td><td>${humanBytes(c.cost.bytesReceived)}</td><td>${c.cost.trainingSeconds.toFixed(1)} s</td>
<td>${c.privacy ? c.privacy.epsilon.toFixed(2) : '-'}</td><td>${c.contribution ? `${(100 * c.contribution.rewardShare).toFixed(1)}%` : '-'}</td></tr>`).join('\n');
  const roundRows = r.rounds.map((x) => `<tr><td>${x.number}</td><td>${x.seconds.toFixed(1)} s</td><td>${esc(x.received.join(', '))}</td><td>${esc(x.dropped.join(', ') || '-')}</td><td>${pct(x.meanAccuracy)}</td><td>${humanBytes(x.bytesUp)}</td><td>${humanBytes(x.bytesDown)}</td><td class="mono">${esc(x.versionId)}</td></tr>`).join('\n');
  const bytesChart = hbars(r.companies.map((c) => ({
    label: c.name,
    values: [
      { v: c.cost.bytesSent, color: '#f59e0b', text: humanBytes(c.cost.bytesSent), name: 'sent' },
      { v: c.cost.bytesReceived, color: '#6366f1', text: humanBytes(c.cost.bytesReceived), name: 'received' },
    ],
  })));
  const privacy = privacySection(r, color);
  const contributions = contributionSection(r, color);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fedmm demo report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;margin:0;background:#f9fafb}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted,.sub{color:#6b7280}.ok{color:#065f46;background:#ecfdf5;padding:8px 12px;border-radius:6px}.warn{color:#92400e;background:#fffbeb;padding:8px 12px;border-radius:6px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}.card b{display:block;font-size:22px}.card span{font-size:12px;color:#6b7280}
.grid4{display:grid;gap:8px}.grid4 svg{width:100%}
svg{background:#fff;border:1px solid #e5e7eb;border-radius:8px;max-width:100%;height:auto}
.grid{stroke:#eef0f3}.tick{font-size:10px;fill:#6b7280}.label{font-size:12px;fill:#111827}.ctitle{font-size:13px;font-weight:600}.barval{font-size:9px;fill:#374151}
.zero{stroke:#9ca3af;stroke-width:1}.two{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:8px 0}.two svg{width:100%}
table.narrow{width:auto;min-width:50%}td.num,th.num{text-align:right}
.reflabel{font-size:9px;fill:#6b7280}.ref-local{stroke:#9ca3af;stroke-dasharray:5 4;stroke-width:1.5}.ref-central{stroke:#111827;stroke-dasharray:1.5 3;stroke-width:1.5}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0 10px;font-size:12px;color:#374151}.legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}th,td{border-bottom:1px solid #e5e7eb;padding:5px 7px;text-align:left}th{background:#f3f4f6;font-weight:600}
.pos{color:#047857;font-weight:600}.neg{color:#b91c1c;font-weight:600}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}.mono{font-family:ui-monospace,monospace;font-size:11px}
</style></head><body><main>
<h1>fedmm demo: city safety operations</h1>
<p class="sub">${r.companies.length} companies fine-tuned one multimodal model (${esc(r.settings.strategy)}, ${r.rounds.length} rounds of ${r.settings.localEpochs} local epochs, LoRA rank ${r.settings.rank}) over gRPC with mutual TLS, ${esc(privacyPhrase(r))}. Generated ${esc(r.generatedAt)}, seed ${r.settings.seed}, tfjs ${esc(r.settings.backend)}.</p>
<div class="cards">${cards.map(([a, b, c]) => `<div class="card"><span>${esc(a!)}</span><b>${esc(b!)}</b><span>${esc(c!)}</span></div>`).join('')}</div>
${verdict}
<h2>Accuracy by setting</h2>
<p>Each company's own test set. Local only: adapters trained on its data alone with the same number of epochs as the federation. Centralized: one model trained on everybody's data pooled, which no company could do without sharing it.</p>
${legend(SETTINGS.map((x) => ({ label: x.label, color: x.color })))}
${comparisonChart(r)}
<h2>Accuracy per round</h2>
<p>The shared model after each round (round 0 is the pretrained base) on each company's test set; the dashed line is the company's local-only accuracy, the dotted one the centralized upper bound, the diamond the personalized model.</p>
<div class="grid4" style="grid-template-columns:repeat(${r.companies.length <= 3 ? r.companies.length : 2},1fr)">${r.companies.map((c, i) => roundChart(r, c, color(i))).join('\n')}</div>
<h2>What each company paid and got</h2>
<table><thead><tr><th>company</th><th>train / test</th><th>modalities</th><th>local only</th><th>federated</th><th>personalized</th><th>centralized</th><th>gain</th><th>sent</th><th>received</th><th>training</th><th>ε</th><th>reward</th></tr></thead>
<tbody>${rows}</tbody></table>
<h2>Bytes moved</h2>
<p>Per company: adapter updates sent to the gateway and model versions received from it (${humanBytes(r.bytes.up)} up and ${humanBytes(r.bytes.down)} down in all; the frozen base is ${humanBytes(r.model.baseBytes)}, one adapter version ${humanBytes(r.model.adapterBytes)}).</p>
${bytesChart}
${privacy}
${contributions}
<h2>Rounds</h2>
<table><thead><tr><th>round</th><th>duration</th><th>received</th><th>dropped</th><th>mean accuracy</th><th>updates up</th><th>adapters down</th><th>published version</th></tr></thead><tbody>${roundRows}</tbody></table>
<h2>Run</h2>
<p class="muted">Model ${esc(r.model.modelId)}: base ${esc(r.model.baseVersionId)} (public-split accuracy ${pct(r.model.publicAccuracy)}), task ${esc(r.taskId)}. Timings: ${Object.entries(r.timings).map(([k, v]) => `${esc(k)} ${v.toFixed(1)} s`).join(', ')}.</p>
</main></body></html>
`;
}

/** Epsilon per company (table, bars) and its growth over the rounds, or why there is none. */
function privacySection(r: DemoReport, color: (i: number) => string): string {
  const p = r.privacy;
  const spent = r.companies.filter((c) => c.privacy);
  if (spent.length === 0) {
    const why = !p || p.mode === 'none' ? `This run used no differential privacy (privacy mode ${esc(p?.mode ?? 'none')}), so no epsilon was spent. <code>fedmm demo --privacy record</code> runs DP-SGD in every agent and charts each company's epsilon; docs/DEMO.md measures what it costs in accuracy.` : 'The privacy service reported no committed spend for this task.';
    return `<h2>Privacy spent</h2><p class="muted">${why}</p>`;
  }
  const how = p?.mode === 'record'
    ? `Record-level DP: each company's agent ran DP-SGD, every example's gradient clipped to norm ${p.clipNorm} and Gaussian noise of standard deviation ${p.noiseMultiplier} (noise multiplier) &times; ${p.clipNorm} (clip norm) added to each batch's sum (batches of about ${((p.samplingRate ?? 0) * 100).toFixed(1)}% of the company's data, at most ${p.localSteps} steps a round). Epsilon bounds what the shared model reveals about any one record of the company.`
    : p?.mode === 'client'
      ? `Client-level DP: each company's update clipped to norm ${p.clipNorm}, Gaussian noise of standard deviation ${p.noiseMultiplier} (noise multiplier) &times; ${p.clipNorm} (clip norm) added to the sum at the aggregator. Epsilon bounds what the shared model reveals about a company's participation as a whole.`
      : '';
  const names = r.companies.map((c) => c.name);
  const rows = spent.map((c) => `<tr><td><i class="sw" style="background:${color(names.indexOf(c.name))}"></i>${esc(c.name)}</td><td class="num"><b>${c.privacy!.epsilon.toFixed(2)}</b></td><td class="num">${c.privacy!.delta}</td><td class="num">${c.privacy!.samplingRate.toFixed(4)}</td><td class="num">${c.privacy!.noiseMultiplier}</td><td class="num">${c.privacy!.steps}</td></tr>`).join('');
  const bars = hbars(spent.map((c) => ({ label: c.name, values: [{ v: c.privacy!.epsilon, color: color(names.indexOf(c.name)), text: `ε ${c.privacy!.epsilon.toFixed(2)}`, name: '' }] })), 520);
  const perRound = r.rounds.some((x) => x.epsilon)
    ? lineChart('cumulative ε per round', spent.map((c) => ({ name: c.name, color: color(names.indexOf(c.name)), points: [[0, 0] as [number, number], ...r.rounds.filter((x) => x.epsilon?.[c.name] !== undefined).map((x) => [x.number, x.epsilon![c.name]!] as [number, number])] })), r.rounds.length)
    : '';
  return `<h2>Privacy spent</h2>
<p>${how} The privacy service composed each company's committed events with the ${esc(p?.accountant ?? '')} accountant at delta ${p?.delta ?? ''} (composition, not a sum of per-round epsilons).</p>
<table class="narrow"><thead><tr><th>company</th><th class="num">ε</th><th class="num">δ</th><th class="num">sampling rate</th><th class="num">noise multiplier</th><th class="num">steps</th></tr></thead><tbody>${rows}</tbody></table>
${legend(spent.map((c) => ({ label: c.name, color: color(names.indexOf(c.name)) })))}
<div class="two">${bars}${perRound}</div>`;
}

/** Contributions per round and cumulative, with reward shares and tiers, or why there are none. */
function contributionSection(r: DemoReport, color: (i: number) => string): string {
  const valued = r.companies.filter((c) => c.contribution);
  if (valued.length === 0) return `<h2>Contributions</h2><p class="muted">The valuation service reported no contributions for this task.</p>`;
  const names = r.companies.map((c) => c.name);
  const utility = r.contributionUtility === 'validation:accuracy'
    ? "a round's value of a set of companies is the accuracy, on the platform's validation set, of the previous model plus the aggregate of their updates, so a company's value is the accuracy it added"
    : r.contributionUtility === 'consensus-distance'
      ? "without a validation set the value of a set of companies is how close their aggregate comes to the round's model, so a company's value is its share of the round's movement"
      : `utility ${esc(r.contributionUtility ?? 'unknown')}`;
  const accuracy = r.contributionUtility?.endsWith(':accuracy') ?? false;
  // Accuracy values are shares of the validation set: shown in points, as the accuracy charts are.
  const value = (v: number): string => (Math.abs(v) < 1e-9 ? '0' : accuracy ? `${v > 0 ? '+' : ''}${(100 * v).toFixed(Math.abs(v) < 0.1 ? 2 : 1)} pts` : fmt(v));
  const axis = (v: number): string => (accuracy ? `${(100 * v).toFixed(Math.abs(v) < 0.01 && v !== 0 ? 1 : 0)}` : fmt(v));
  const rounds = r.rounds.filter((x) => x.contributions).map((x) => ({ number: x.number, values: { ...x.contributions! } }));
  const cumulative = names.map((n, i) => {
    let acc = 0;
    return { name: n, color: color(i), points: [[0, 0] as [number, number], ...rounds.map((x) => [x.number, (acc += x.values[n] ?? 0)] as [number, number])] };
  });
  const rows = valued.map((c) => `<tr><td><i class="sw" style="background:${color(names.indexOf(c.name))}"></i>${esc(c.name)}</td><td class="num">${value(c.contribution!.value)}</td><td class="num"><b>${(100 * c.contribution!.rewardShare).toFixed(1)}%</b></td><td>${esc(c.contribution!.tier || '-')}</td></tr>`).join('');
  const shares = hbars(valued.map((c) => ({ label: c.name, values: [{ v: Math.max(0, c.contribution!.rewardShare), color: color(names.indexOf(c.name)), text: `${(100 * c.contribution!.rewardShare).toFixed(1)}%`, name: '' }] })), 520);
  return `<h2>Contributions</h2>
<p>${esc(capitalize(r.contributionMethod ?? 'exact'))} Shapley values of every round from the valuation service: ${utility}${accuracy ? ' (charts in accuracy points)' : ''}. Rewards are proportional to the positive cumulative values; the tier decides how soon a company may download new versions.</p>
${legend(names.map((n, i) => ({ label: n, color: color(i) })))}
<div class="two">${roundBars('contribution per round', rounds, names, color, axis)}${lineChart('cumulative contribution', cumulative, r.rounds.length, axis)}</div>
<div class="two"><table><thead><tr><th>company</th><th class="num">cumulative value</th><th class="num">reward share</th><th>tier</th></tr></thead><tbody>${rows}</tbody></table>${shares}</div>`;
}

/** The privacy mode in words, for the subtitle. */
function privacyPhrase(r: DemoReport): string {
  const mode = r.privacy?.mode ?? 'none';
  return mode === 'record' ? 'record-level differential privacy (DP-SGD in every agent)' : mode === 'client' ? 'client-level differential privacy (noise at the aggregator)' : 'without differential privacy';
}

/** Summary card: the largest epsilon any company spent, or that DP was off. */
function privacyCard(r: DemoReport): [string, string, string] {
  const eps = r.companies.map((c) => c.privacy?.epsilon).filter((e): e is number => e !== undefined);
  if (eps.length === 0) return ['privacy', 'no DP', r.privacy?.mode && r.privacy.mode !== 'none' ? 'no spend reported' : 'updates not noised'];
  const top = Math.max(...eps);
  return ['privacy spent', `ε ${top >= 100 ? top.toFixed(0) : top.toFixed(1)}`, `largest, δ ${(r.privacy?.delta ?? 1e-5).toExponential(0)}, ${r.privacy?.mode ?? ''}-level`];
}
