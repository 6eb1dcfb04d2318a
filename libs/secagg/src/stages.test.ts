import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { SecAggClient } from './client.js';
import { compileRoundConfig } from './config.js';
import type { CollectMaskedRequest, UnmaskRequest } from './messages.js';
import { seededRandom } from './random.js';
import { SecAggServer } from './server.js';
import { clientIds, seedOf } from './test-support.js';

const fails = (code: string, pattern?: RegExp) => (e: unknown) =>
  isFedmmError(e) && e.code === code && (pattern === undefined || pattern.test(e.message));

const ids = clientIds(5);
const base = { roundId: 'stages-r1', participants: ids, vectorLength: 8, clipRange: 1, numShares: 5, threshold: 3 };

/** A round of five clients advanced to the start of stage 2, with its stage-2 requests. */
async function atStage2(label: string) {
  const server = new SecAggServer({ ...base, roundSeed: seedOf(`${label}/seed`) });
  const clients = new Map(ids.map((id) => [id, new SecAggClient({ clientId: id, random: seededRandom(seedOf(`${label}/${id}`)) })]));
  for (const c of clients.values()) server.acceptSetup(c.setup(server.setupRequest()));
  for (const r of server.closeSetup()) server.acceptShareKeys(await clients.get(r.clientId)!.shareKeys(r));
  const collect = server.closeShareKeys();
  return { server, clients, collect: new Map(collect.map((r) => [r.clientId, r])) };
}

/** The same, advanced to stage 3 with every client's masked input in. */
async function atStage3(label: string) {
  const s = await atStage2(label);
  for (const [id, r] of s.collect) s.server.acceptMaskedInput(s.clients.get(id)!.maskInput(r, new Float32Array(8).fill(0.25)));
  const unmask = new Map(s.server.closeCollection().map((r) => [r.clientId, r]));
  return { ...s, unmask };
}

test('a client refuses unmask requests that would reveal both shares of a peer or too little survives', async () => {
  const { clients, unmask } = await atStage3('refuse');
  const me = ids[0]!;
  const client = clients.get(me)!;
  const req = unmask.get(me)!;
  const overlap: UnmaskRequest = { ...req, dropped: [ids[1]!] };
  assert.throws(() => client.unmask(overlap), fails('INVALID_ARGUMENT', /both as survivor and as dropped/));
  const withoutMe: UnmaskRequest = { ...req, survivors: ids.slice(1), dropped: [me] };
  assert.throws(() => client.unmask(withoutMe), fails('INVALID_ARGUMENT', /omit client-000/));
  const few: UnmaskRequest = { ...req, survivors: [me, ids[1]!], dropped: ids.slice(2) };
  assert.throws(() => client.unmask(few), fails('FAILED_PRECONDITION', /below threshold 3; no share is revealed/));
  // Nothing was revealed by the refusals: the honest request still gets an answer, exactly once.
  const answer = client.unmask(req);
  assert.equal(answer.seedShares.length, 5);
  assert.equal(answer.keyShares.length, 0);
  assert.equal(client.unmask({ ...req }), answer);
  const flip: UnmaskRequest = { ...req, survivors: ids.slice(0, 4), dropped: [ids[4]!] };
  assert.throws(() => client.unmask(flip), fails('FAILED_PRECONDITION', /answers only once/));
});

test('a tampered, misrouted or replayed sealed share is refused', async () => {
  const { clients, collect } = await atStage2('tamper');
  const [a, b] = [ids[0]!, ids[1]!];
  const req = collect.get(a)!;
  const first = req.encryptedShares[0]!;
  const flipped = first.ciphertext.slice();
  flipped[3]! ^= 1;
  const tampered: CollectMaskedRequest = { ...req, encryptedShares: [{ ...first, ciphertext: flipped }, ...req.encryptedShares.slice(1)] };
  assert.throws(() => clients.get(a)!.maskInput(tampered, new Float32Array(8)), fails('INVALID_ARGUMENT', /failed authentication/));
  // A share for b relabelled as one for a does not open: the receiver is bound in the associated data.
  const forB = collect.get(b)!.encryptedShares.find((s) => s.sender !== a)!;
  const own = req.encryptedShares.find((s) => s.sender === forB.sender)!;
  const swapped: CollectMaskedRequest = {
    ...req,
    encryptedShares: req.encryptedShares.map((s) => (s === own ? { ...forB, receiver: a } : s)),
  };
  assert.throws(() => clients.get(a)!.maskInput(swapped, new Float32Array(8)), fails('INVALID_ARGUMENT', /failed authentication/));
  const misrouted: CollectMaskedRequest = { ...req, encryptedShares: [forB] };
  assert.throws(() => clients.get(a)!.maskInput(misrouted, new Float32Array(8)), fails('INVALID_ARGUMENT', /addressed to client-001/));
  // The untouched request still works: the refusals left the client in stage 2.
  const input = clients.get(a)!.maskInput(req, new Float32Array(8));
  assert.equal(input.maskedVector!.length, 8);
});

test('a client with too few neighbours sharing keys sends no input', async () => {
  const { clients, collect } = await atStage2('thin');
  const req = collect.get(ids[2]!)!;
  const thin: CollectMaskedRequest = { ...req, encryptedShares: req.encryptedShares.slice(0, 1) };
  assert.throws(() => clients.get(ids[2]!)!.maskInput(thin, new Float32Array(8)), fails('FAILED_PRECONDITION', /below threshold 3/));
});

test('stage methods called out of order say where the round is', async () => {
  const client = new SecAggClient({ clientId: ids[0]! });
  const collect: CollectMaskedRequest = { stage: 'collect-masked', roundId: 'stages-r1', clientId: ids[0]!, encryptedShares: [] };
  assert.throws(() => client.maskInput(collect, new Float32Array(8)), fails('FAILED_PRECONDITION', /at stage 'setup'/));
  const server = new SecAggServer(base);
  assert.throws(() => server.closeCollection(), fails('FAILED_PRECONDITION', /at stage 'setup', not 'collect-masked'/));
});

test('the server refuses late, foreign, inconsistent and reused messages', async () => {
  const { server, clients, collect } = await atStage2('server');
  const late = ids[4]!;
  for (const id of ids.slice(0, 4)) server.acceptMaskedInput(clients.get(id)!.maskInput(collect.get(id)!, new Float32Array(8)));
  assert.throws(
    () => server.acceptMaskedInput({ stage: 'collect-masked', roundId: 'stages-r1', clientId: 'intruder' }),
    fails('INVALID_ARGUMENT', /intruder is not a member/),
  );
  const unmask = server.closeCollection();
  const lateInput = clients.get(late)!.maskInput(collect.get(late)!, new Float32Array(8));
  assert.throws(() => server.acceptMaskedInput(lateInput), fails('FAILED_PRECONDITION', /counts as dropped/));
  assert.deepEqual([...unmask[0]!.dropped], [late]);
  // A survivor revealing a key share of another survivor is refused and not counted.
  const r0 = clients.get(ids[0]!)!.unmask(unmask[0]!);
  const greedy = { ...r0, keyShares: [...r0.keyShares, { owner: ids[1]!, share: r0.seedShares[0]!.share }] };
  assert.throws(() => server.acceptUnmask(greedy), fails('INVALID_ARGUMENT', /must reveal seed shares/));
  server.acceptUnmask(r0);
  server.acceptUnmask(r0);
  for (const r of unmask.slice(1)) server.acceptUnmask(clients.get(r.clientId)!.unmask(r));
  const { sum } = await server.finish();
  assert.ok(sum !== undefined && Math.abs(sum[0]!) < 1e-6);
});

test('the server refuses public keys that are reused or change', () => {
  const server = new SecAggServer({ ...base, roundSeed: seedOf('keys/seed') });
  const a = new SecAggClient({ clientId: ids[0]!, random: seededRandom(seedOf('keys/a')) }).setup(server.setupRequest());
  server.acceptSetup(a);
  server.acceptSetup({ ...a });
  const other = new SecAggClient({ clientId: ids[0]!, random: seededRandom(seedOf('keys/a2')) }).setup(server.setupRequest());
  assert.throws(() => server.acceptSetup(other), fails('INVALID_ARGUMENT', /already sent different public keys/));
  assert.throws(() => server.acceptSetup({ ...a, clientId: ids[1]! }), fails('INVALID_ARGUMENT', /not fresh.*client-000/));
});

test('a corrupted key share is detected when the dropped client key is rebuilt', async () => {
  const { server, clients, collect } = await atStage2('corrupt');
  for (const id of ids.slice(0, 4)) server.acceptMaskedInput(clients.get(id)!.maskInput(collect.get(id)!, new Float32Array(8)));
  for (const r of server.closeCollection()) {
    const resp = clients.get(r.clientId)!.unmask(r);
    const keyShares = resp.keyShares.map((k) => {
      const share = k.share.slice();
      share[0]! ^= 0xff;
      return { owner: k.owner, share };
    });
    server.acceptUnmask({ ...resp, keyShares });
  }
  await assert.rejects(server.finish(), fails('DATA_LOSS', /does not match its public key/));
  assert.equal(server.stage, 'failed');
});

test('round configurations that cannot be run safely are refused', () => {
  const seed = seedOf('config');
  const ok = { ...base, participants: clientIds(20), roundSeed: seed };
  assert.equal(compileRoundConfig({ ...ok, numShares: 7, threshold: 4 }).threshold, 4);
  assert.throws(() => compileRoundConfig({ ...ok, numShares: 6, threshold: 4 }), fails('INVALID_ARGUMENT', /is even/));
  assert.throws(() => compileRoundConfig({ ...ok, numShares: 7, threshold: 3 }), fails('INVALID_ARGUMENT', /7 \/ 2 < threshold/));
  assert.throws(() => compileRoundConfig({ ...ok, numShares: 7, threshold: 8 }), fails('INVALID_ARGUMENT', /threshold <= 7/));
  assert.throws(() => compileRoundConfig({ ...ok, numShares: 301, threshold: 200, participants: clientIds(300) }), fails('INVALID_ARGUMENT', /limited to 255/));
  assert.throws(() => compileRoundConfig({ ...ok, participants: ['a', 'a', 'b'] }), fails('INVALID_ARGUMENT', /unique/));
  assert.throws(() => compileRoundConfig({ ...ok, clipRange: -1 }), fails('INVALID_ARGUMENT', /clipRange/));
  assert.throws(() => compileRoundConfig({ ...ok, roundSeed: new Uint8Array(5) }), fails('INVALID_ARGUMENT', /roundSeed/));
  assert.throws(() => compileRoundConfig({ ...ok, protocolVersion: 2 }), fails('INVALID_ARGUMENT', /version 2/));
  const client = new SecAggClient({ clientId: 'stranger' });
  assert.throws(() => client.setup({ stage: 'setup', config: compileRoundConfig(ok) }), fails('INVALID_ARGUMENT', /not a participant/));
});
