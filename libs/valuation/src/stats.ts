import { invalidArgument } from '@fedmm/core';

/** Spearman rank correlation of two value maps over the same keys (average ranks for ties). */
export function spearman(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): number {
  const keys = Object.keys(a);
  if (keys.length < 2 || keys.length !== Object.keys(b).length || keys.some((k) => !(k in b))) {
    throw invalidArgument('spearman needs two value maps over the same (at least two) companies');
  }
  const ra = ranks(keys.map((k) => a[k] ?? 0));
  const rb = ranks(keys.map((k) => b[k] ?? 0));
  return pearson(ra, rb);
}

function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => ({ x, i })).sort((p, q) => p.x - q.x);
  const out = new Array<number>(xs.length).fill(0);
  let k = 0;
  while (k < order.length) {
    let end = k;
    while (end + 1 < order.length && order[end + 1]?.x === order[k]?.x) end++;
    const rank = (k + end) / 2 + 1;
    for (let m = k; m <= end; m++) out[order[m]?.i ?? 0] = rank;
    k = end + 1;
  }
  return out;
}

function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (x[i] ?? 0) - mx;
    const dy = (y[i] ?? 0) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return sxx === syy ? 1 : 0;
  return sxy / Math.sqrt(sxx * syy);
}
