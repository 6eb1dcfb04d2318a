import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { appendRecord, canonicalJson, exportChain, PlatformAuditLog, recordHash, type AuditRecord } from '@fedmm/audit';
import { createLogger } from '@fedmm/core';
import { taskKey } from '@fedmm/aggregator-service';
import { hostService, type HostedService } from '@fedmm/service-kit';
import { contributionsKey, standing, valuationModule } from '@fedmm/valuation-service';
import { compileAccessTiers, compileRewardRule } from '@fedmm/valuation';
import { runAudit } from './audit.js';
import { runContributions } from './contributions.js';

const dir = mkdtempSync(join(tmpdir(), 'fedmm-cli-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(fn: typeof runAudit, ...argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const code = await fn(argv, (t) => (out += t));
  return { code, out };
}

function chain(task: string, n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (let i = 0; i < n; i++) {
    out.push(appendRecord(out[i - 1] ?? null, { task, kind: i === 0 ? 'task.created' : 'update.received', actor: 'gateway', payload: { i, tenant: `c${i % 3}` }, at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) }));
  }
  return out;
}

/** Writes an export, then rewrites its record lines with `tamper`. */
async function tamperedExport(name: string, tamper: (records: AuditRecord[]) => AuditRecord[]): Promise<string> {
  const path = join(dir, `${name}.jsonl`);
  await exportChain(chain('t1', 8), path, { task: 't1' });
  const [header, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
  const records = tamper(lines.map((l) => JSON.parse(l) as AuditRecord));
  writeFileSync(path, `${[header, ...records.map((r) => canonicalJson(r))].join('\n')}\n`);
  return path;
}

const rehash = (r: Omit<AuditRecord, 'hash'>): AuditRecord => ({ ...r, hash: recordHash(r) });

test('fedmm audit verify --file passes an intact export and names each kind of tampering', async () => {
  const intact = await tamperedExport('intact', (rs) => rs);
  const ok = await run(runAudit, 'verify', 't1', '--file', intact);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /8 records, chain intact/);

  const cases: [string, (rs: AuditRecord[]) => AuditRecord[], RegExp][] = [
    ['edited', (rs) => rs.map((r) => (r.seq === 4 ? { ...r, payload: { i: 99 } } : r)), /changed at seq 4/],
    ['edited-rehashed', (rs) => rs.map((r) => (r.seq === 4 ? rehash({ ...r, payload: { i: 99 } }) : r)), /changed at seq 4/],
    ['removed', (rs) => rs.filter((r) => r.seq !== 5), /removed at seq 5/],
    ['reordered', (rs) => [...rs.slice(0, 2), rs[3]!, rs[2]!, ...rs.slice(4)], /reordered at seq 3/],
    ['inserted', (rs) => [...rs.slice(0, 6), rehash({ ...rs[6]!, payload: { forged: true } }), ...rs.slice(6)], /inserted at seq 7/],
    ['truncated', (rs) => rs.slice(0, 7), /removed at seq 8/],
  ];
  for (const [name, tamper, expected] of cases) {
    const r = await run(runAudit, 'verify', 't1', '--file', await tamperedExport(name, tamper));
    assert.equal(r.code, 1, `${name}: ${r.out}`);
    assert.match(r.out, /TAMPERED/);
    assert.match(r.out, expected, name);
  }

  // A consistent rewrite of file and header passes on its own, and fails against a known head.
  const path = join(dir, 'rewritten.jsonl');
  const forged = chain('t1', 8).slice(0, 5);
  await exportChain(forged, path, { task: 't1' });
  assert.equal((await run(runAudit, 'verify', 't1', '--file', path)).code, 0);
  const receipt = chain('t1', 8)[7]!.hash;
  const caught = await run(runAudit, 'verify', 't1', '--file', path, '--head', receipt);
  assert.equal(caught.code, 1, caught.out);
  assert.equal((await run(runAudit, 'verify', 'other-task', '--file', intact)).code, 1);
});

describe('fedmm audit and fedmm contributions against a valuation service', { timeout: 60_000 }, () => {
  let hosted: HostedService;
  const log = createLogger({}, 'warn');

  before(async () => {
    hosted = await hostService(valuationModule, {
      FEDMM_GRPC_PORT: '0', FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_STORE: 'sqlite', FEDMM_BUS: 'embedded', FEDMM_DATA_DIR: dir, FEDMM_VALUATION_CONSUME: 'false',
    }, { log });
  });
  after(async () => {
    await hosted?.stop();
  });

  test('export then verify offline; contributions prints the table', async () => {
    const addr = `127.0.0.1:${hosted.port}`;
    const trail = new PlatformAuditLog({ store: hosted.ctx.store });
    for (let i = 1; i <= 5; i++) await trail.append('live', 'round.opened', { round: i, note: undefined }, 'coordinator');
    const online = await run(runAudit, 'verify', 'live', '--addr', addr);
    assert.equal(online.code, 0, online.out);
    assert.match(online.out, /5 records, chain intact/);
    const out = join(dir, 'live.jsonl');
    const exported = await run(runAudit, 'export', 'live', '--out', out, '--addr', addr);
    assert.equal(exported.code, 0, exported.out);
    assert.equal((await run(runAudit, 'verify', 'live', '--file', out)).code, 0);

    const members = ['acme', 'globex', 'initech'];
    await hosted.ctx.store.put(taskKey('scored'), JSON.stringify({ taskId: 'scored', modelId: 'm', members, termsJson: '', valuationMethod: '', privacy: { secureAggregation: false } }));
    const state = standing('scored', members, [
      { round: 1, attempt: 1, method: 'exact', utility: 'consensus-distance', values: { acme: 0.7, globex: 0.3, initech: 0 }, evaluations: 8, emptyValue: -1, fullValue: 0, secure: false, scoredAt: 0 },
    ], compileRewardRule(), compileAccessTiers());
    await hosted.ctx.store.put(contributionsKey('scored'), JSON.stringify(state));
    const table = await run(runContributions, 'scored', '--addr', addr);
    assert.equal(table.code, 0, table.out);
    assert.match(table.out, /1 round\(s\) scored; last: round 1, exact over consensus-distance/);
    assert.match(table.out, /acme +0\.700000 +0\.700000 +70\.0% +full \(delay 0\)/);
    assert.match(table.out, /initech +0 +0 +0\.0% +free-rider \(delay 3\)/);
  });
});
