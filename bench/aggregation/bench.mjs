// Aggregation benchmark: FedAvg throughput next to memcpy and Flower, peak RSS vs K, 1 vs 2 workers.
// Run through run.sh, which builds the library and prepares the Python environment.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CoordinateMedian, FedAvg, cpuCompute, createCpuCompute } from '@fedmm/aggregation';

const here = fileURLToPath(new URL('.', import.meta.url));
const env = process.env;
const K = Number(env.BENCH_K ?? 8);
const P = Number(env.BENCH_P ?? 8 * 1024 * 1024); // elements per client update (32 MiB)
const SHARDS = Number(env.BENCH_SHARDS ?? 8);
const CHUNK = 256 * 1024; // 1 MiB of float32, the gateway's chunk size
const REPS = Number(env.BENCH_REPS ?? 7);
const RSS_P = Number(env.BENCH_RSS_P ?? 4 * 1024 * 1024);
const RSS_KS = (env.BENCH_RSS_KS ?? '2,4,8,16,32,64').split(',').map(Number);
const PYTHON = env.BENCH_PYTHON ?? 'python3';

const GB = 1e9;
const fmt = (x, d = 2) => x.toFixed(d);

function fillSeeded(arr, seed) {
  let a = seed >>> 0;
  for (let i = 0; i < arr.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    arr[i] = a / 4294967296 - 0.5;
  }
}

/** Runs FedAvg over shards [first, last) of the clients' vectors, chunk by chunk, as a worker does. */
export function fedavgShards(clients, weights, p, shards, first, last, options = {}) {
  const strategy = new FedAvg(options);
  const shardLen = Math.ceil(p / shards);
  let check = 0;
  for (let s = first; s < last; s++) {
    const from = s * shardLen;
    const to = Math.min(p, from + shardLen);
    const acc = strategy.createShardAccumulator({ shardLength: to - from });
    for (let o = from; o < to; o += CHUNK) {
      const e = Math.min(to, o + CHUNK);
      for (let c = 0; c < clients.length; c++) acc.add(`c${c}`, o - from, clients[c].subarray(o, e), weights[c]);
    }
    check += acc.finish()[0];
  }
  return check;
}

const median = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** Starts Flower's aggregate in a Python process that stays up, so its runs interleave with ours. */
async function startFlower(file, weights) {
  const py = spawn(PYTHON, [join(here, 'flower_fedavg.py'), file, String(K), String(P), weights.join(',')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  py.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  py.on('error', (e) => { stderr += String(e); });
  const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(stderr.trim().split('\n').pop() || `${PYTHON} exited`);
    return JSON.parse(value);
  };
  const ask = async (command) => {
    py.stdin.write(`${command}\n`);
    return next();
  };
  await next(); // {"ready": true}
  return { ask, close: () => py.stdin.end() };
}

async function throughputSection() {
  console.log(`\n== FedAvg throughput: K=${K} clients x ${P} float32 (${fmt((K * P * 4) / 2 ** 20, 0)} MiB of updates), ${SHARDS} shards, 1 MiB chunks`);
  const sab = new SharedArrayBuffer(K * P * 4);
  const clients = Array.from({ length: K }, (_, c) => {
    const v = new Float32Array(sab, c * P * 4, P);
    fillSeeded(v, c + 1);
    return v;
  });
  const weights = Array.from({ length: K }, (_, c) => 100 + 37 * c);
  const bytes = K * P * 4;

  const dir = mkdtempSync(join(tmpdir(), 'fedmm-bench-'));
  let flower;
  try {
    const file = join(dir, 'updates.f32');
    writeFileSync(file, new Uint8Array(sab));
    flower = await startFlower(file, weights);
  } catch (e) {
    console.log(`Flower aggregate not run: ${e.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const dst = new Float32Array(P);
  const buf = Buffer.alloc(P * 4);
  const scalar = createCpuCompute({ simd: false });
  const timed = (fn) => async () => {
    const s = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - s) / 1e9;
  };
  const cases = {
    memcpy: ['memcpy (Float32Array.set)', timed(() => { for (const v of clients) dst.set(v); })],
    buffer: ['memcpy (Buffer.copy)', timed(() => { for (const v of clients) Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(buf); })],
    fedavg: [`FedAvg, fused, '${cpuCompute.name}' kernels (default)`, timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS))],
    scalar: ["FedAvg, fused, 'cpu-scalar' kernels", timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS, { compute: scalar }))],
    unfused: [`FedAvg, unfused (fuseWidth 1), '${cpuCompute.name}'`, timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS, { fuseWidth: 1 }))],
  };
  if (flower !== undefined) cases.flower = ['Flower aggregate (numpy)', async () => (await flower.ask('run')).seconds];
  // Interleaved (Flower included: its process waits for each turn), so that load from other
  // processes hits every measurement alike; medians of REPS, ratios taken within each repetition.
  const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const [, run] of Object.values(cases)) await run();
  for (let r = 0; r < REPS; r++) {
    for (const [k, [, run]] of Object.entries(cases)) times[k].push(await run());
  }
  const gbps = (k) => bytes / median(times[k]) / GB;
  const ratio = (a, b) => median(times[a].map((t, r) => times[b][r] / t));
  const spread = (k) => `${fmt(bytes / Math.max(...times[k]) / GB)}..${fmt(bytes / Math.min(...times[k]) / GB)}`;
  console.log(`medians of ${REPS} interleaved repetitions (range in brackets); ratios are medians of per-repetition ratios`);
  for (const [k, [label]] of Object.entries(cases)) {
    let line = `${label.padEnd(45)} ${fmt(gbps(k)).padStart(6)} GB/s  [${spread(k)}]`;
    if (k !== 'memcpy' && k !== 'buffer' && k !== 'flower') line += `   ratio to memcpy ${fmt(ratio(k, 'memcpy'))}`;
    if (k === 'fedavg' || k === 'scalar') {
      if (flower !== undefined) line += `   / Flower ${fmt(ratio(k, 'flower'))}x`;
    }
    if (k === 'flower') line += `   ratio to memcpy ${fmt(ratio(k, 'memcpy'))}`;
    console.log(line);
  }
  console.log(`SIMD / scalar kernels within FedAvg          ${fmt(ratio('fedavg', 'scalar'))}x`);
  const goalMemcpy = ratio('fedavg', 'memcpy') >= 0.5;
  const goalFlower = flower !== undefined && ratio('fedavg', 'flower') >= 2;
  console.log(`goals: >= 0.5 of memcpy ${goalMemcpy ? 'met' : 'NOT met'}; >= 2x Flower ${flower === undefined ? 'not measured' : goalFlower ? 'met' : 'NOT met'}`);

  if (flower !== undefined) {
    // Same inputs, same result: Flower sums in float32, fedmm in float64, so they agree to ~1e-6.
    const theirs = await flower.ask('checksum');
    flower.close();
    const acc = new FedAvg().createShardAccumulator({ shardLength: 1000 });
    clients.forEach((v, c) => acc.add(`c${c}`, 0, v.subarray(0, 1000), weights[c]));
    const ours = acc.finish().reduce((x, y) => x + y, 0);
    console.log(`checksum of 1000 results                      fedmm ${ours.toExponential(6)}   Flower ${theirs.checksum.toExponential(6)} (${theirs.dtype})`);
  }
  return { sab, weights };
}

async function workersSection(sab, weights) {
  console.log(`\n== 1 vs 2 workers (worker_threads, each owns half of the ${SHARDS} shards; updates in shared memory)`);
  const spawn = () => new Worker(new URL(import.meta.url), { workerData: { sab, weights, K, P, SHARDS } });
  const run = (w, first, last) => new Promise((resolve, reject) => {
    const fail = (e) => reject(e);
    w.once('error', fail);
    w.once('message', (m) => {
      w.off('error', fail);
      resolve(m);
    });
    w.postMessage({ first, last });
  });
  const workers = [spawn(), spawn()];
  await Promise.all(workers.map((w) => run(w, 0, 1))); // warm-up
  const time = async (fn) => {
    const s = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - s) / 1e9;
  };
  const half = SHARDS / 2;
  const one = [];
  const two = [];
  for (let r = 0; r < REPS; r++) {
    one.push(await time(() => run(workers[0], 0, SHARDS)));
    two.push(await time(() => Promise.all([run(workers[0], 0, half), run(workers[1], half, SHARDS)])));
  }
  const t1 = median(one);
  const t2 = median(two);
  const bytes = K * P * 4;
  console.log(`medians of ${REPS}, alternating\n1 worker   ${fmt(bytes / t1 / GB)} GB/s`);
  console.log(`2 workers  ${fmt(bytes / t2 / GB)} GB/s   speed-up ${fmt(t1 / t2)}x`);
  await Promise.all(workers.map((w) => w.terminate()));
}

function rssChild(strategyName, k, p) {
  // Each chunk is a fresh buffer, as a Kafka message is; the chunk is dropped after add().
  const strategy = strategyName === 'median' ? new CoordinateMedian() : new FedAvg();
  const pool = new Float32Array(CHUNK * 4);
  fillSeeded(pool, 7);
  const before = process.resourceUsage().maxRSS;
  const acc = strategy.createShardAccumulator({ shardLength: p });
  for (let o = 0; o < p; o += CHUNK) {
    const n = Math.min(CHUNK, p - o);
    for (let c = 0; c < k; c++) acc.add(`c${c}`, o, pool.slice((c % 4) * CHUNK, (c % 4) * CHUNK + n), 10 + c);
  }
  acc.finish();
  console.log(JSON.stringify({ maxRSSKiB: process.resourceUsage().maxRSS, baseKiB: before }));
}

function rssSection() {
  console.log(`\n== Peak RSS vs K, one shard of ${RSS_P} float32 (${fmt((RSS_P * 4) / 2 ** 20, 0)} MiB), one process per K`);
  const base = spawnSync(process.execPath, ['-e', 'console.log(process.resourceUsage().maxRSS)'], { encoding: 'utf8' });
  console.log(`(a bare node process: ${fmt(Number(base.stdout) / 1024, 0)} MiB)`);
  console.log('K     FedAvg MiB   median MiB');
  for (const k of RSS_KS) {
    const row = [String(k).padEnd(6)];
    for (const name of ['fedavg', 'median']) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'rss', name, String(k), String(RSS_P)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`rss child failed: ${r.stderr}`);
      const { maxRSSKiB } = JSON.parse(r.stdout.trim());
      row.push(fmt(maxRSSKiB / 1024, 0).padStart(10) + '   ');
    }
    console.log(row.join(''));
  }
}

const { isMainThread, parentPort, workerData } = await import('node:worker_threads');
if (!isMainThread) {
  const { sab, weights, K: k, P: p, SHARDS: shards } = workerData;
  const clients = Array.from({ length: k }, (_, c) => new Float32Array(sab, c * p * 4, p));
  parentPort.on('message', ({ first, last }) => parentPort.postMessage(fedavgShards(clients, weights, p, shards, first, last)));
} else if (process.argv[2] === 'rss') {
  rssChild(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
} else {
  const os = await import('node:os');
  console.log(`node ${process.version}, ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  // Peak RSS first: a child's maxRSS starts from its parent's RSS at fork, so the parent must be small.
  rssSection();
  const { sab, weights } = await throughputSection();
  await workersSection(sab, weights);
}
