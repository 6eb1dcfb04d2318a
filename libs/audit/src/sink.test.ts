import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JsonlFileAuditSink } from './jsonl-file-sink.js';
import { MemoryAuditSink } from './sink.js';
import { runAuditSinkContract } from './sink-contract.js';

runAuditSinkContract('memory', () => {
  const sink = new MemoryAuditSink();
  return Promise.resolve({ sink, reopen: () => sink, done: () => Promise.resolve() });
});

runAuditSinkContract('jsonl file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fedmm-audit-'));
  return { sink: new JsonlFileAuditSink(dir), reopen: () => new JsonlFileAuditSink(dir), done: () => rm(dir, { recursive: true, force: true }) };
});

test('the file sink refuses task ids that could escape its directory', () => {
  assert.throws(() => new JsonlFileAuditSink('/tmp').pathOf('../etc/passwd'), /cannot name an audit file/);
});
