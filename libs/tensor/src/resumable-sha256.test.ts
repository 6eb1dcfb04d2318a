import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { ResumableSha256, type Sha256State } from './resumable-sha256.js';

const nodeSha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('a state exported mid-stream, resumed in a fresh hasher, gives node:crypto digest over random splits', async () => {
  for (let trial = 0; trial < 40; trial++) {
    const data = randomBytes(randomInt(0, 5000));
    const cut = randomInt(0, data.length + 1);
    const first = await ResumableSha256.create();
    let at = 0;
    // Pieces of random sizes, some not multiples of the 64-byte block.
    while (at < cut) {
      const n = Math.min(cut - at, randomInt(1, 300));
      first.update(data.subarray(at, at + n));
      at += n;
    }
    // Through JSON, as the store keeps it.
    const state = JSON.parse(JSON.stringify(first.exportState())) as Sha256State;
    assert.equal(state.bytes, cut);
    const second = await ResumableSha256.resume(state);
    second.update(data.subarray(cut));
    assert.equal(second.bytes, data.length);
    assert.equal(second.digestHex(), nodeSha(data), `trial ${trial}: ${data.length} bytes cut at ${cut}`);
    // The first hasher is unaffected by the export and continues too.
    first.update(data.subarray(cut));
    assert.equal(first.digestHex(), nodeSha(data));
  }
});

test('a state can be resumed twice from the same export, and chained across several hand-overs', async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  let h = await ResumableSha256.create();
  const cuts = [0, 1, 63, 64, 65, 1_000_000, 2_097_152, data.length];
  for (let i = 1; i < cuts.length; i++) {
    h.update(data.subarray(cuts[i - 1], cuts[i]));
    h = await ResumableSha256.resume(h.exportState());
  }
  const end = h.exportState();
  assert.equal((await ResumableSha256.resume(end)).digestHex(), nodeSha(data));
  assert.equal((await ResumableSha256.resume(end)).digestHex(), nodeSha(data));
});

test('a malformed or foreign state is refused with INVALID_ARGUMENT', async () => {
  const good = (await ResumableSha256.create()).update(Buffer.from('abc')).exportState();
  const truncated = { bytes: 3, state: Buffer.from(good.state, 'base64').subarray(0, 20).toString('base64') };
  await assert.rejects(ResumableSha256.resume(truncated), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT' && /cannot be loaded/.test(e.message));
  const foreign = Buffer.from(good.state, 'base64');
  foreign[0] = foreign[0]! ^ 0xff; // the build fingerprint
  await assert.rejects(ResumableSha256.resume({ bytes: 3, state: foreign.toString('base64') }), /another hash-wasm build/);
  await assert.rejects(ResumableSha256.resume({ bytes: -1, state: good.state }), /malformed/);
});

test('a finalized hasher cannot be fed or exported', async () => {
  const h = (await ResumableSha256.create()).update(Buffer.from('x'));
  assert.equal(h.digestHex(), nodeSha(Buffer.from('x')));
  assert.throws(() => h.update(Buffer.from('y')), /already finalized/);
  assert.throws(() => h.exportState(), /already finalized/);
});
