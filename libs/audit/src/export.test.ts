import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AuditLog } from './audit-log.js';
import { exportTask, verifyExport } from './export.js';
import { MemoryAuditSink } from './sink.js';

async function exported() {
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-export-'));
  const sink = new MemoryAuditSink();
  const log = new AuditLog(sink);
  for (const kind of ['task.created', 'round.opened', 'update.received', 'aggregation.result', 'version.published'] as const) {
    await log.append({ task: 'task-9', kind, actor: 'aggregator', payload: { kind } });
  }
  const path = join(dir, 'task-9.audit.jsonl');
  const header = await exportTask(sink, 'task-9', path);
  const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
  return { dir, path, header, lines, done: () => rm(dir, { recursive: true, force: true }) };
}

test('an export verifies offline, with nothing but the file', async () => {
  const e = await exported();
  try {
    assert.equal(e.header.records, 5);
    const r = await verifyExport(e.path);
    assert.equal(r.ok, true);
    assert.equal(r.ok && r.headHash, e.header.headHash);
    assert.equal((await verifyExport(e.path, { expectedHeadHash: 'f'.repeat(64) })).ok, false);
  } finally {
    await e.done();
  }
});

test('an edited, truncated or reordered export is located', async () => {
  const e = await exported();
  try {
    const write = (lines: string[]) => writeFile(e.path, `${lines.join('\n')}\n`);
    await write(e.lines.map((l, i) => (i === 3 ? l.replace('"update.received"}', '"nothing"}') : l)));
    let r = await verifyExport(e.path);
    assert.ok(!r.ok && r.problem === 'changed' && r.firstBadSeq === 3, JSON.stringify(r));
    await write(e.lines.slice(0, -1));
    r = await verifyExport(e.path);
    assert.ok(!r.ok && r.problem === 'removed' && r.firstBadSeq === 5, JSON.stringify(r));
    await write([e.lines[0] ?? '', e.lines[1] ?? '', e.lines[3] ?? '', e.lines[2] ?? '', ...e.lines.slice(4)]);
    r = await verifyExport(e.path);
    assert.ok(!r.ok && r.problem === 'reordered' && r.firstBadSeq === 2, JSON.stringify(r));
    await write(e.lines.map((l, i) => (i === 2 ? '{not json' : l)));
    r = await verifyExport(e.path);
    assert.ok(!r.ok && r.problem === 'changed' && r.firstBadSeq === 2, JSON.stringify(r));
    await write(e.lines.slice(1));
    assert.equal((await verifyExport(e.path)).ok, false);
  } finally {
    await e.done();
  }
});
