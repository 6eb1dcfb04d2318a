// A short federation on the whole platform (one process, real Kafka and Redis, the gateway over
// mutual TLS), scraped by a real Prometheus; then every panel query of every Grafana dashboard
// in deploy/grafana/dashboards must return data from it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTelemetry, type Telemetry } from '@fedmm/telemetry';
import { waitFor } from '@fedmm/core';
import { task as tpb } from '@fedmm/proto';
import { buildUpdate, upload } from '../gateway/updates.js';
import { tempDir } from '../support/env.js';
import { LAYOUT, TENANTS, startPlatform, type Platform } from './platform.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DASHBOARDS = join(ROOT, 'deploy/grafana/dashboards');
const ROUNDS = 3;
const REDIS_DB = 8;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const dir = tempDir('dashboards');
const promDir = join(dir, 'prometheus');
const promEnv = (port: number): NodeJS.ProcessEnv => ({ ...process.env, FEDMM_PROMETHEUS_DIR: promDir, FEDMM_PROMETHEUS_SERVER_PORT: String(port), FEDMM_PROMETHEUS_SCRAPE_INTERVAL: '1s' });
const prometheusScript = (cmd: string, port: number): Promise<{ stdout: string; stderr: string }> =>
  promisify(execFile)(join(ROOT, 'scripts/prometheus.sh'), [cmd], { env: promEnv(port), timeout: 240_000 });

let telemetry: Telemetry;
let promPort: number;
let platform: Platform;

before(async () => {
  // One scrape endpoint for the whole platform: a process has one MeterProvider.
  const metricsPort = await freePort();
  process.env['FEDMM_PROMETHEUS_HOST'] = '127.0.0.1';
  telemetry = startTelemetry({ serviceName: 'fedmm-platform', prometheusPort: metricsPort });
  promPort = await freePort();
  await prometheusScript('start', promPort);
  mkdirSync(join(promDir, 'targets'), { recursive: true });
  writeFileSync(join(promDir, 'targets', 'fedmm.json'), JSON.stringify([{ targets: [`127.0.0.1:${metricsPort}`], labels: { service_name: 'fedmm-platform' } }]));
  platform = await startPlatform(REDIS_DB, { withPeers: true });
});

after(async () => {
  await platform?.stop();
  await telemetry?.shutdown();
  if (promPort) await prometheusScript('stop', promPort).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

/** Every PromQL expression of every panel, with Grafana's interval variables made concrete. */
function panelQueries(): { dashboard: string; panel: string; expr: string }[] {
  const out: { dashboard: string; panel: string; expr: string }[] = [];
  for (const f of readdirSync(DASHBOARDS).filter((n) => n.endsWith('.json')).sort()) {
    const d = JSON.parse(readFileSync(join(DASHBOARDS, f), 'utf8')) as { title: string; panels: { title: string; panels?: unknown[]; targets?: { expr?: string }[] }[] };
    const panels = d.panels.flatMap((p) => [p, ...((p.panels ?? []) as typeof d.panels)]);
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        if (!t.expr) continue;
        const expr = t.expr.replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, '1m').replace(/\$__range/g, '1h');
        out.push({ dashboard: d.title, panel: p.title, expr });
      }
    }
  }
  return out;
}

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${expr}: ${body.error}`);
  if (body.data?.resultType === 'scalar') return [{ metric: {}, value: body.data.result as [number, string] }];
  return body.data!.result as { metric: Record<string, string>; value: [number, string] }[];
}

test('a scraped federation run gives every dashboard panel data', { timeout: 240_000 }, async () => {
  const coordinator = platform.coordinator;
  const agents = TENANTS.map((t) => platform.agent(t));
  const taskId = await platform.openTask({ rounds: ROUNDS, privacy: tpb.PrivacyConfig.fromPartial({ mode: 'client', noiseMultiplier: 1.1, clipNorm: 1, delta: 1e-5, accountant: 'rdp' }) });
  for (let round = 1; round <= ROUNDS; round++) {
    await waitFor(async () => (await coordinator.getRound({ taskId, number: round }).catch(() => undefined))?.round?.state === tpb.RoundState.ROUND_STATE_OPEN, { timeoutMs: 30_000, what: `round ${round} to open`, intervalMs: 200 });
    for (const [i, agent] of agents.entries()) {
      const u = buildUpdate(taskId, round, `r${round}-${TENANTS[i]}`, LAYOUT.map((t) => ({ ...t, dtype: 'F32' as const })));
      assert.equal((await upload(agent, u)).complete, true);
    }
    // A second upload to the same round is refused: a rejection with a reason.
    await assert.rejects(upload(agents[0]!, buildUpdate(taskId, round, `r${round}-again`, LAYOUT.map((t) => ({ ...t, dtype: 'F32' as const })))));
    await waitFor(async () => (await coordinator.getRound({ taskId, number: round })).round!.state === tpb.RoundState.ROUND_STATE_PUBLISHED, { timeoutMs: 60_000, what: `round ${round} to publish`, intervalMs: 200 });
    // Rounds end in different scrapes, so rates over the round-duration histogram see increases.
    await new Promise((r) => setTimeout(r, 2500));
  }

  // Prometheus has scraped the final state (and the lag probe has reported) once the rounds gauge says so.
  await waitFor(async () => (await query('sum(fedmm_rounds{state="published"})')).some((s) => Number(s.value[1]) >= 1) && (await query('fedmm_consumer_lag')).length > 0, { timeoutMs: 30_000, what: 'Prometheus to scrape the run', intervalMs: 500 });
  await new Promise((r) => setTimeout(r, 2000));

  const queries = panelQueries();
  assert.ok(queries.length >= 20, `found only ${queries.length} panel queries under ${DASHBOARDS}`);
  const empty: string[] = [];
  for (const q of queries) {
    const result = await query(q.expr);
    if (!result.some((s) => Number.isFinite(Number(s.value[1])))) empty.push(`${q.dashboard} / ${q.panel}: ${q.expr} -> ${JSON.stringify(result)}`);
  }
  assert.deepEqual(empty, [], `panels without data:\n${empty.join('\n')}`);
});
