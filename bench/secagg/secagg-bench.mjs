// Secure-aggregation round against a plain round with the same clients and update size.
// Build first, then run:  npx tsc -b libs/secagg && node bench/secagg/secagg-bench.mjs [--quick]
// Prints, per (clients, parameters): wall time of the whole round simulated in this process
// (clients one after another), wall time with the clients running in parallel (per stage the
// slowest client plus the server), bytes each client sends and receives, and secagg/plain ratios.
// Each secure round runs twice: with the server unmasking on this thread alone, and with an
// UnmaskPool of --threads threads (default: the available parallelism) sharing the unmasking.
// The three variants run --reps times in turn (default 2, 3 with --quick); each keeps its best.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { SecAggClient, SecAggServer, seededRandom, UnmaskPool } from '@fedmm/secagg';

const quick = process.argv.includes('--quick');
const threadsArg = process.argv.indexOf('--threads');
const THREADS = threadsArg > 0 ? Number(process.argv[threadsArg + 1]) : availableParallelism();
const repsArg = process.argv.indexOf('--reps');
const REPS = repsArg > 0 ? Number(process.argv[repsArg + 1]) : quick ? 3 : 2;
const pool = new UnmaskPool({ threads: THREADS });
const CASES = quick
  ? [[10, 100_000], [50, 100_000]]
  : [[10, 1_000_000], [10, 10_000_000], [50, 1_000_000], [50, 10_000_000]];
const CLIP = 0.05;

const seed = (label) => new Uint8Array(createHash('sha256').update(label).digest());
const ids = (n) => Array.from({ length: n }, (_, i) => `tenant-${String(i).padStart(2, '0')}/agent`);
// SecAgg+ sizing: a complete graph for small rounds, about 2 log2(n) neighbours for larger ones.
const sharesFor = (n) => (n <= 20 ? n : 2 * Math.ceil(Math.log2(n)) + 1);
const thresholdFor = (n) => Math.floor(sharesFor(n) / 2) + 1;

/** A reproducible update of `length` coordinates around zero, a little wider than the clip range. */
function update(label, length) {
  const bytes = new Uint8Array(length * 4);
  seededRandom(seed(label)).fill(bytes);
  const w = new Int32Array(bytes.buffer);
  const out = new Float32Array(length);
  const k = (1.5 * CLIP) / 2 ** 31;
  for (let i = 0; i < length; i++) out[i] = w[i] * k;
  return out;
}

/** Bytes of a message as a protobuf-like encoding would carry it: payload plus 2 bytes of framing per field. */
function wireBytes(v) {
  if (v instanceof Uint8Array || v instanceof Uint32Array || v instanceof Float32Array) return v.byteLength + 2;
  if (typeof v === 'string') return Buffer.byteLength(v) + 2;
  if (typeof v === 'number') return 5;
  if (Array.isArray(v)) return v.reduce((s, x) => s + wireBytes(x), 0);
  if (v && typeof v === 'object') return Object.values(v).reduce((s, x) => s + wireBytes(x), 2);
  return 0;
}

const now = () => performance.now();

function plainRound(n, length, updates) {
  const clientMs = [];
  const upBytes = [];
  let serverMs = 0;
  const sum = new Float64Array(length);
  for (const id of ids(n)) {
    const u = updates(id);
    let t = now();
    // The client clips as in the secure round; the upload is the float32 vector itself.
    const clipped = new Float32Array(length);
    for (let i = 0; i < length; i++) clipped[i] = u[i] < -CLIP ? -CLIP : u[i] > CLIP ? CLIP : u[i];
    const upload = new Uint8Array(clipped.buffer);
    clientMs.push(now() - t);
    upBytes.push(wireBytes({ clientId: id, data: upload }));
    t = now();
    const v = new Float32Array(upload.buffer, upload.byteOffset, length);
    for (let i = 0; i < length; i++) sum[i] += v[i];
    serverMs += now() - t;
  }
  const t = now();
  const mean = new Float32Array(length);
  for (let i = 0; i < length; i++) mean[i] = sum[i] / n;
  serverMs += now() - t;
  const serial = clientMs.reduce((a, b) => a + b, 0) + serverMs;
  return { serial, parallel: Math.max(...clientMs) + serverMs, up: mean1(upBytes), down: 0, result: mean };
}

async function secureRound(n, length, updates, unmaskPool) {
  const stageClient = [[], [], [], []];
  const stageServer = [0, 0, 0, 0, 0];
  const up = new Map();
  const down = new Map();
  const count = (m, id, msg) => m.set(id, (m.get(id) ?? 0) + wireBytes(msg));
  const timed = (arr, f) => { const t = now(); const r = f(); arr.push(now() - t); return r; };
  const timedAsync = async (arr, f) => { const t = now(); const r = await f(); arr.push(now() - t); return r; };
  const srv = (i, f) => { const t = now(); const r = f(); stageServer[i] += now() - t; return r; };

  const server = srv(0, () => new SecAggServer({
    roundId: `bench-${n}-${length}`, participants: ids(n), vectorLength: length, clipRange: CLIP,
    numShares: sharesFor(n), threshold: thresholdFor(n), roundSeed: seed(`bench/${n}/${length}`),
  }));
  const clients = new Map(ids(n).map((id) => [id, new SecAggClient({ clientId: id })]));
  const setup = srv(0, () => server.setupRequest());
  for (const [id, c] of clients) {
    count(down, id, setup);
    const r = timed(stageClient[0], () => c.setup(setup));
    count(up, id, r);
    srv(0, () => server.acceptSetup(r));
  }
  for (const req of srv(1, () => server.closeSetup())) {
    count(down, req.clientId, req);
    const r = await timedAsync(stageClient[1], () => clients.get(req.clientId).shareKeys(req));
    count(up, req.clientId, r);
    srv(1, () => server.acceptShareKeys(r));
  }
  for (const req of srv(2, () => server.closeShareKeys())) {
    count(down, req.clientId, req);
    const u = updates(req.clientId);
    const r = timed(stageClient[2], () => clients.get(req.clientId).maskInput(req, u));
    count(up, req.clientId, r);
    srv(2, () => server.acceptMaskedInput(r));
  }
  for (const req of srv(3, () => server.closeCollection())) {
    count(down, req.clientId, req);
    const r = timed(stageClient[3], () => clients.get(req.clientId).unmask(req));
    count(up, req.clientId, r);
    srv(3, () => server.acceptUnmask(r));
  }
  let t = now();
  const { sum } = await server.finish(unmaskPool === undefined ? {} : { pool: unmaskPool });
  const mean = new Float32Array(length);
  for (let i = 0; i < length; i++) mean[i] = sum[i] / n;
  stageServer[4] += now() - t;
  const serverMs = stageServer.reduce((a, b) => a + b, 0);
  const serial = stageClient.flat().reduce((a, b) => a + b, 0) + serverMs;
  const parallel = stageClient.reduce((s, times) => s + Math.max(...times), 0) + serverMs;
  return {
    serial, parallel, up: mean1([...up.values()]), down: mean1([...down.values()]), result: mean,
    detail: { maskMs: mean1(stageClient[2]), sumMs: stageServer[2], unmaskMs: stageServer[4], shares: sharesFor(n), threshold: thresholdFor(n) },
  };
}

function mean1(xs) { return xs.reduce((a, b) => a + b, 0) / xs.length; }
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const mib = (b) => `${(b / 2 ** 20).toFixed(2)} MiB`;

console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run, best of ${REPS}; times in this process, clients simulated in turn\n`);
// Warm the JIT on both paths so that the first measured case is not charged for compilation.
{
  const w = (id) => update(`warm/${id}`, 20_000);
  for (let i = 0; i < 3; i++) { plainRound(10, 20_000, w); await secureRound(10, 20_000, w); await secureRound(10, 20_000, w, pool); }
}
const rows = [];
for (const [n, length] of CASES) {
  const cache = new Map();
  // Updates are made outside the timed regions and shared by both rounds.
  const updates = (id) => { if (!cache.has(id)) { if (cache.size > 0 && length > 2_000_000) cache.clear(); cache.set(id, update(`u/${id}`, length)); } return cache.get(id); };
  // Repetitions interleave the variants, so that load from other work hits them alike; each
  // variant keeps its best run.
  const runs = { plain: [], secure: [], pooled: [] };
  let reference;
  let maxErr = 0;
  const check = (run) => {
    for (let i = 0; i < length; i++) maxErr = Math.max(maxErr, Math.abs(reference[i] - run.result[i]));
    run.result = undefined;
  };
  for (let r = 0; r < REPS; r++) {
    const p = plainRound(n, length, updates);
    reference ??= p.result;
    p.result = undefined;
    runs.plain.push(p);
    const s = await secureRound(n, length, updates);
    check(s);
    runs.secure.push(s);
    const q = await secureRound(n, length, updates, pool);
    check(q);
    runs.pooled.push(q);
  }
  const fastest = (xs) => xs.reduce((a, b) => (b.parallel < a.parallel ? b : a));
  const minSerial = (xs) => Math.min(...xs.map((x) => x.serial));
  const plain = { ...fastest(runs.plain), serial: minSerial(runs.plain) };
  const secure = { ...fastest(runs.secure), serial: minSerial(runs.secure) };
  const pooled = fastest(runs.pooled);
  const row = {
    clients: n, params: length, shares: secure.detail.shares, threshold: secure.detail.threshold,
    plainSerial: plain.serial, secureSerial: secure.serial, serialRatio: secure.serial / plain.serial,
    plainParallel: plain.parallel, secureParallel: secure.parallel, parallelRatio: secure.parallel / plain.parallel,
    plainBytes: plain.up + plain.down, secureBytes: secure.up + secure.down, bytesRatio: (secure.up + secure.down) / (plain.up + plain.down),
    pooledParallel: pooled.parallel, pooledRatio: pooled.parallel / plain.parallel,
    maskMs: secure.detail.maskMs, sumMs: secure.detail.sumMs, unmaskMs: secure.detail.unmaskMs, pooledUnmaskMs: pooled.detail.unmaskMs, maxErr,
  };
  rows.push(row);
  console.log(
    `${n} clients x ${(length / 1e6).toFixed(1)}M params (numShares ${row.shares}, threshold ${row.threshold}):\n` +
    `  wall, clients in turn:     plain ${fmt(row.plainSerial)}  secagg ${fmt(row.secureSerial)}  ratio ${row.serialRatio.toFixed(2)}x\n` +
    `  wall, clients in parallel: plain ${fmt(row.plainParallel)}  secagg ${fmt(row.secureParallel)}  ratio ${row.parallelRatio.toFixed(2)}x\n` +
    `  same, unmasking on ${THREADS} threads:  secagg ${fmt(row.pooledParallel)}  ratio ${row.pooledRatio.toFixed(2)}x\n` +
    `  bytes per client (up+down): plain ${mib(row.plainBytes)}  secagg ${mib(row.secureBytes)}  ratio ${row.bytesRatio.toFixed(4)}x\n` +
    `  client encoding and masking ${fmt(row.maskMs)} each; server summing ${fmt(row.sumMs)}, unmasking ${fmt(row.unmaskMs)} ` +
    `(${fmt(row.pooledUnmaskMs)} on ${THREADS} threads); max |mean difference| ${row.maxErr.toExponential(2)}\n`,
  );
}
console.log(`| clients | params | numShares / threshold | wall plain (clients in parallel) | wall secagg | ratio | ratio, unmasking on ${THREADS} threads | ratio, clients in turn | client encode + mask | server unmask (1 / ${THREADS} threads) | bytes/client plain | bytes/client secagg | ratio |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.clients} | ${r.params >= 1e6 ? `${r.params / 1e6}M` : `${r.params / 1e3}k`} | ${r.shares} / ${r.threshold} | ${fmt(r.plainParallel)} | ${fmt(r.secureParallel)} | ${r.parallelRatio.toFixed(2)}x | ` +
    `${r.pooledRatio.toFixed(2)}x | ${r.serialRatio.toFixed(2)}x | ${fmt(r.maskMs)} | ${fmt(r.unmaskMs)} / ${fmt(r.pooledUnmaskMs)} | ${mib(r.plainBytes)} | ${mib(r.secureBytes)} | ${r.bytesRatio.toFixed(4)}x |`,
  );
}
await pool.close();
