#!/usr/bin/env node
// Static checks of the Grafana dashboards in deploy/grafana/dashboards: every panel query is plain
// PromQL (no Grafana macros or variables) over the platform's metric names and labels, so the same
// queries can be run against a real Prometheus. Prints one line per check and "N passed, M failed".
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { assert, check, finish } from './checks.mjs';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: check-dashboards.mjs <dashboards dir>');
  process.exit(2);
}

// Prometheus names of the domain metrics and the labels each carries (plus resource labels).
const METRICS = {
  fedmm_rounds: ['state'],
  fedmm_round_duration_seconds_bucket: ['le'],
  fedmm_round_duration_seconds_sum: [],
  fedmm_round_duration_seconds_count: [],
  fedmm_updates_received_total: [],
  fedmm_updates_rejected_total: ['reason'],
  fedmm_bytes_in_total: ['service'],
  fedmm_bytes_out_total: ['service'],
  fedmm_aggregation_bytes_total: [],
  fedmm_consumer_lag: ['topic', 'partition'],
  fedmm_privacy_epsilon_spent: ['tenant', 'task'],
  fedmm_contribution: ['tenant', 'task'],
  fedmm_audit_chain_length: ['task'],
};
const RESOURCE_LABELS = ['service_name', 'job', 'instance'];


const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const uids = new Set();
check('three dashboards: platform overview, rounds, privacy and contributions', () => {
  assert(files.length === 3, `found ${files.join(', ')}`);
});
for (const file of files) {
  const d = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  check(`${file}: unique uid, title and panel ids`, () => {
    assert(d.uid && !uids.has(d.uid), `uid ${d.uid} missing or repeated`);
    uids.add(d.uid);
    assert(typeof d.title === 'string' && d.title.startsWith('fedmm / '), `title ${d.title}`);
    const ids = d.panels.map((p) => p.id);
    assert(new Set(ids).size === ids.length, `repeated panel ids ${ids}`);
    assert(d.panels.length >= 6, `only ${d.panels.length} panels`);
  });
  check(`${file}: panels do not overlap on the grid`, () => {
    const cells = new Map();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      assert(x >= 0 && w > 0 && x + w <= 24, `${p.title}: x ${x} w ${w} outside the 24 columns`);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        const key = `${i},${j}`;
        assert(!cells.has(key), `${p.title} overlaps ${cells.get(key)}`);
        cells.set(key, p.title);
      }
    }
  });
  for (const p of d.panels) {
    check(`${file}: "${p.title}" queries are plain PromQL over known metrics and labels`, () => {
      assert(p.targets.length > 0, 'no queries');
      for (const t of p.targets) {
        const expr = t.expr;
        assert(typeof expr === 'string' && expr.trim(), 'empty expression');
        assert(!expr.includes('$'), `Grafana variable or macro in ${expr}`);
        let depth = 0;
        for (const ch of expr) {
          if (ch === '(') depth++;
          if (ch === ')') depth--;
          assert(depth >= 0, `unbalanced parentheses in ${expr}`);
        }
        assert(depth === 0, `unbalanced parentheses in ${expr}`);
        const names = expr.match(/\bfedmm_[a-z_]+\b/g) ?? [];
        assert(names.length > 0, `no fedmm metric in ${expr}`);
        const labels = new Set(RESOURCE_LABELS);
        for (const n of names) {
          assert(n in METRICS, `unknown metric ${n} in ${expr}`);
          for (const l of METRICS[n]) labels.add(l);
        }
        for (const [, list] of expr.matchAll(/\b(?:by|without|ignoring|on)\s*\(([^)]*)\)/g)) {
          for (const l of list.split(',').map((s) => s.trim()).filter(Boolean)) assert(labels.has(l), `label ${l} is not on ${names.join(', ')}: ${expr}`);
        }
        for (const [, l] of expr.matchAll(/\{\s*([a-z_]+)\s*=~?/g)) assert(labels.has(l), `matcher on unknown label ${l}: ${expr}`);
        for (const [, l] of expr.matchAll(/\{\{\s*([a-z_]+)\s*\}\}/g)) assert(false, `legend template in expression: ${l}`);
        for (const [, l] of (t.legendFormat ?? '').matchAll(/\{\{\s*([a-z_]+)\s*\}\}/g)) assert(labels.has(l), `legend uses ${l}, which the query does not return`);
        assert(!/rate\(fedmm_(rounds|consumer_lag|privacy_epsilon_spent|contribution|audit_chain_length)\b/.test(expr), `rate() over a gauge: ${expr}`);
        assert(!/(^|[^_a-z])fedmm_[a-z_]+_total\b(?![^(]*\[)/.test(expr.replace(/rate\([^)]*\)|increase\([^)]*\)/g, '')), `counter used without rate()/increase(): ${expr}`);
      }
    });
  }
}
finish();
