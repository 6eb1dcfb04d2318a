import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { decodeImage, encodePng, floatToRgb, resizeToFloat } from '../image.js';
import type { QualityReport, SampleRef } from './inspect.js';

export const REPORT_JSON = 'quality-report.json';
export const REPORT_HTML = 'quality-report.html';

const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A small PNG data URI of a sample's image, or '' when it has none or it cannot be read. */
async function thumbnail(dir: string, ref: SampleRef, cache: Map<string, string>): Promise<string> {
  if (ref.image === undefined) return '';
  const hit = cache.get(ref.image);
  if (hit !== undefined) return hit;
  let uri = '';
  try {
    const img = decodeImage(await readFile(path.join(dir, ref.image)), ref.image);
    uri = `data:image/png;base64,${encodePng(floatToRgb(resizeToFloat(img, 48, 48), 48, 48)).toString('base64')}`;
  } catch {
    uri = '';
  }
  cache.set(ref.image, uri);
  return uri;
}

function barChart(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const rowH = 22, labelW = 170, barW = 360;
  const rows = entries
    .map(([label, n], i) => {
      const w = Math.round((n / max) * barW);
      const y = i * rowH;
      return `<text x="${labelW - 6}" y="${y + 15}" text-anchor="end">${esc(label)}</text><rect x="${labelW}" y="${y + 3}" width="${w}" height="${rowH - 6}" fill="${n === 0 ? '#d9534f' : '#4a7fb5'}"/><text x="${labelW + w + 6}" y="${y + 15}">${n}</text>`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + 60}" height="${entries.length * rowH}" font-size="12" font-family="sans-serif" role="img" aria-label="class balance">${rows}</svg>`;
}

function table(headers: string[], rows: string[][]): string {
  if (rows.length === 0) return '<p class="ok">None found.</p>';
  return `<table><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** Renders the report as one self-contained HTML page (inline SVG chart, data-URI thumbnails). */
export async function renderReportHtml(report: QualityReport, dir: string): Promise<string> {
  const cache = new Map<string, string>();
  const thumb = async (r: SampleRef): Promise<string> => {
    const uri = await thumbnail(dir, r, cache);
    return uri === '' ? '' : `<img src="${uri}" width="48" height="48" alt="${esc(r.id)}">`;
  };
  const s = report.summary;
  const card = (label: string, value: number | string, bad = false): string =>
    `<div class="card${bad ? ' bad' : ''}"><div class="v">${esc(value)}</div><div class="l">${esc(label)}</div></div>`;
  const labelRows = await Promise.all(
    report.labelIssues.issues.map(async (i) => [await thumb(i), esc(i.id), String(i.line), esc(i.label), esc(i.suggested), i.selfConfidence.toFixed(2), i.suggestedConfidence.toFixed(2)]),
  );
  const dupRows = await Promise.all(
    report.duplicates.samples.flatMap((g) =>
      g.duplicates.map(async (d) => [await thumb(g.keep), await thumb(d), esc(g.kind), `${esc(g.keep.id)} (line ${g.keep.line})`, `${esc(d.id)} (line ${d.line})`, g.labelsAgree ? 'yes' : '<b>no</b>']),
    ),
  );
  const m = report.modalities;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Data quality: ${esc(report.dataset)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{border:1px solid #ccc;border-radius:6px;padding:.6rem 1rem;min-width:7rem}
.card .v{font-size:1.5rem;font-weight:600}.card .l{font-size:.8rem;color:#555}.card.bad{border-color:#d9534f;background:#fdf2f2}
table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:middle}
th{background:#f4f4f4}.ok{color:#2e7d32}code{background:#f4f4f4;padding:0 .2rem}img{image-rendering:pixelated}
</style></head><body>
<h1>Data-quality report</h1>
<p>Dataset <code>${esc(report.dataset)}</code>, manifest <code>${esc(path.basename(report.manifest))}</code> (sha256 <code>${esc(report.manifestSha256.slice(0, 16))}…</code>), ${esc(report.generatedAt)}. Classes from ${esc(report.classSource)}.</p>
<div class="cards">
${card('samples', s.samples)}${card('usable', s.usable)}${card('manifest errors', s.manifestErrors, s.manifestErrors > 0)}${card('decode errors', s.decodeErrors, s.decodeErrors > 0)}
${card('unknown labels', s.unknownLabels, s.unknownLabels > 0)}${card('duplicates', s.duplicateSamples, s.duplicateSamples > 0)}${card('suspected label errors', s.labelIssues, s.labelIssues > 0)}
${card('flat sensor channels', s.flatLines, s.flatLines > 0)}${card('sensor outliers', s.sensorOutliers, s.sensorOutliers > 0)}${card('imbalance ratio', report.classBalance.imbalanceRatio.toFixed(1), report.classBalance.imbalanceRatio > 5)}
</div>
<h2>Class balance</h2>
${barChart(report.classBalance.counts)}
${report.classBalance.missingClasses.length > 0 ? `<p>Classes without samples: ${report.classBalance.missingClasses.map(esc).join(', ')}</p>` : ''}
<h2>Modalities</h2>
${table(['modality', 'present', 'missing'], (['image', 'text', 'sensor'] as const).map((k) => [k, String(m[k].present), String(m[k].missing)]))}
<p>Combinations: ${Object.entries(m.combinations).map(([k, n]) => `${esc(k || '(none)')}: ${n}`).join(', ')}</p>
<h2>Suspected label errors (${esc(report.labelIssues.method)}, agreement ${(report.labelIssues.agreement * 100).toFixed(0)}%)</h2>
${table(['image', 'id', 'line', 'given', 'suggested', 'p(given)', 'p(suggested)'], labelRows)}
<h2>Duplicates</h2>
${table(['kept', 'duplicate', 'kind', 'kept sample', 'duplicate sample', 'labels agree'], dupRows)}
<h2>Decode errors</h2>
${table(['id', 'line', 'field', 'message'], report.decodeErrors.map((d) => [esc(d.id), String(d.line), esc(d.field), esc(d.message)]))}
<h2>Manifest errors</h2>
${table(['line', 'field', 'message'], report.manifestErrors.map((e) => [String(e.line), esc(e.field ?? ''), esc(e.message)]))}
${report.unknownLabels.length > 0 ? `<h2>Unknown labels</h2>${table(['label', 'lines'], report.unknownLabels.map((u) => [esc(u.label), u.lines.slice(0, 20).join(', ') + (u.lines.length > 20 ? ' …' : '')]))}` : ''}
<h2>Sensors</h2>
<h3>Flat (dead) channels</h3>
${table(['id', 'line', 'channel', 'std'], report.sensors.flatLines.map((f) => [esc(f.id), String(f.line), String(f.channel), f.std.toExponential(1)]))}
<h3>Outliers</h3>
${table(['id', 'line', 'channel', 'statistic', 'value', 'robust z'], report.sensors.outliers.map((o) => [esc(o.id), String(o.line), String(o.channel), esc(o.statistic), o.value.toFixed(3), o.robustZ.toFixed(1)]))}
${report.sensors.channelMismatch.length > 0 ? `<h3>Channel count differs</h3>${table(['id', 'line', 'channels'], report.sensors.channelMismatch.map((c) => [esc(c.id), String(c.line), String(c.channels)]))}` : ''}
</body></html>
`;
}

async function writeAtomically(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** Writes quality-report.json and quality-report.html into `outDir` and returns their paths. */
export async function writeReport(report: QualityReport, outDir: string): Promise<{ json: string; html: string }> {
  const json = path.join(outDir, REPORT_JSON);
  const html = path.join(outDir, REPORT_HTML);
  await writeAtomically(json, JSON.stringify(report, null, 2) + '\n');
  await writeAtomically(html, await renderReportHtml(report, report.dataset));
  return { json, html };
}
