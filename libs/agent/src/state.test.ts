import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentState, STATE_FILE } from './state.js';

test('the state file survives a reopen and leaves no temporary files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-agent-state-'));
  const s = AgentState.open(dir);
  assert.equal(s.get('t1', 1, 1), undefined);
  s.set({ task: 't1', round: 1, attempt: 1, status: 'uploading', uploadId: 'u-1', sha256: 'ab', updateFile: 'updates/u-1' });
  const again = AgentState.open(dir);
  assert.equal(again.get('t1', 1, 1)?.status, 'uploading');
  assert.equal(again.get('t1', 1, 1)?.uploadId, 'u-1');
  again.set({ ...again.get('t1', 1, 1)!, status: 'done' });
  assert.equal(AgentState.open(dir).get('t1', 1, 1)?.status, 'done');
  assert.equal(AgentState.open(dir).get('t1', 1, 2), undefined, 'another attempt is another entry');
  assert.deepEqual(readdirSync(dir), [STATE_FILE]);
});

test('a damaged state file is refused rather than silently forgotten', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-agent-state-'));
  writeFileSync(join(dir, STATE_FILE), '{"version":1,"rou');
  assert.throws(() => AgentState.open(dir), (e: Error & { code?: string }) => e.code === 'DATA_LOSS' && /upload again/.test(e.message));
});
