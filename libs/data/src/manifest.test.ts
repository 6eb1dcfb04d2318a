import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FedmmError } from '@fedmm/core';
import { parseManifestLine, readManifest, resolveLabels } from './manifest.js';

async function dataset(lines: string[], labels?: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'fedmm-manifest-'));
  await writeFile(path.join(dir, 'manifest.jsonl'), lines.join('\n') + '\n');
  if (labels !== undefined) await writeFile(path.join(dir, 'labels.json'), JSON.stringify(labels));
  return dir;
}

test('a missing label is reported with file, line and field', async () => {
  const dir = await dataset(['{"text":"a","label":"x"}', '', '{"text":"b"}']);
  await assert.rejects(readManifest(dir), (e: unknown) => {
    assert.ok(e instanceof FedmmError);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /manifest\.jsonl:3: field 'label' is missing/);
    return true;
  });
});

test('each kind of bad line names its field', () => {
  const cases: Array<[string, RegExp]> = [
    ['not json', /x\.jsonl:7: is not valid JSON/],
    ['[1,2]', /is not a JSON object/],
    ['{"label":"a","lable":"b","text":"t"}', /field 'lable' is not a manifest field/],
    ['{"label":3,"text":"t"}', /field 'label' is 3/],
    ['{"label":"a"}', /has no 'image', 'text' or 'sensor'/],
    ['{"label":"a","image":"../secret.png"}', /field 'image' '..\/secret.png' points outside the dataset folder/],
    ['{"label":"a","image":"/etc/x.png"}', /field 'image' is the absolute path/],
    ['{"label":"a","image":"a.gif"}', /field 'image' 'a.gif' has extension '.gif'/],
    ['{"label":"a","sensor":[[1,2],[3]]}', /field 'sensor' channel 1 has 1 steps/],
    ['{"label":"a","sensor":[[1,2],[3,4,5]]}', /channel 1 has 3 steps but channel 0 has 2/],
    ['{"label":"a","sensor":[[1,"x"]]}', /channel 0 step 1 is "x"/],
    ['{"label":"a","sensor":{"path":"s.txt"}}', /field 'sensor.path' 's.txt' has extension '.txt'/],
    ['{"label":"a","sensor":5}', /field 'sensor' must be channels x steps/],
  ];
  for (const [line, pattern] of cases) {
    assert.throws(() => parseManifestLine(line, 'x.jsonl:7'), (e: unknown) => e instanceof FedmmError && pattern.test(e.message), line);
  }
  const ok = parseManifestLine('{"id":"s1","image":"img/a.PNG","text":"t","sensor":{"path":"s/a.csv"},"label":"a"}', 'x:1');
  assert.deepEqual(ok, { id: 's1', image: 'img/a.PNG', text: 't', sensor: { path: 's/a.csv' }, label: 'a' });
});

test('collect mode returns every bad line, duplicate ids included, and keeps the good ones', async () => {
  const dir = await dataset(['{"id":"a","text":"x","label":"c1"}', '{"id":"a","text":"y","label":"c1"}', '{"text":"z"}', '{"text":"w","label":"c2"}']);
  const r = await readManifest(dir, { onInvalid: 'collect' });
  assert.deepEqual(r.records.map((x) => [x.line, x.id]), [[1, 'a'], [4, 'line-4']]);
  assert.deepEqual(r.issues.map((i) => [i.line, i.field]), [[2, 'id'], [3, 'label']]);
  assert.match(r.issues[0]!.message, /'a' is already used on line 1/);
});

test('a folder without a manifest is NOT_FOUND and says what is expected', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fedmm-empty-'));
  await assert.rejects(readManifest(dir), (e: unknown) => e instanceof FedmmError && e.code === 'NOT_FOUND' && /manifest\.jsonl/.test(e.message));
});

test('the class list comes from the task, then labels.json, then the manifest, and unknown labels are listed', async () => {
  const dir = await dataset(['{"text":"a","label":"b"}', '{"text":"b","label":"a"}', '{"text":"c","label":"zz"}']);
  const m = await readManifest(dir);
  const fromManifest = await resolveLabels(dir, m.records);
  assert.deepEqual(fromManifest.classes, ['a', 'b', 'zz']);
  assert.equal(fromManifest.source, 'manifest');
  const given = await resolveLabels(dir, m.records, ['b', 'a']);
  assert.deepEqual(given.unknown, [{ label: 'zz', lines: [3] }]);
  const withFile = await dataset(['{"text":"a","label":"q"}'], ['p', 'q']);
  const r = await resolveLabels(withFile, (await readManifest(withFile)).records);
  assert.equal(r.source, 'labels.json');
  assert.deepEqual(r.classes, ['p', 'q']);
  await assert.rejects(resolveLabels(dir, m.records, ['a', 'a']), /listed twice/);
});
