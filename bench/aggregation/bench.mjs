// Aggregation benchmark: FedAvg throughput next to memcpy and Flower, peak RSS vs K, 1 vs 2 workers.
// Run through run.sh, which builds the library and prepares the Python environment.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
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
const SECTIONS = new Set((env.BENCH_SECTIONS ?? 'rss,throughput,workers').split(','));

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
  // Ordinary ArrayBuffers, as chunks decoded from Kafka messages are (copies out of a
  // SharedArrayBuffer take a slower, relaxed-atomic path, for memcpy and the kernels alike).
  const clients = Array.from({ length: K }, (_, c) => {
    const v = new Float32Array(P);
    fillSeeded(v, c + 1);
    return v;
  });
  const weights = Array.from({ length: K }, (_, c) => 100 + 37 * c);
  const bytes = K * P * 4;

  const dir = mkdtempSync(join(tmpdir(), 'fedmm-bench-'));
  let flower;
  try {
    const file = join(dir, 'updates.f32');
    const fd = openSync(file, 'w');
    for (const v of clients) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    }
    closeSync(fd);
    flower = await startFlower(file, weights);
  } catch (e) {
    console.log(`Flower aggregate not run: ${e.message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const dst = new Float32Array(P);
  const buf = Buffer.alloc(P * 4);
  const scalar = createCpuCompute({ simd: false });
  // Wall-clock and CPU seconds of one run: on a loaded machine the wall clock also counts time
  // spent waiting for a core; CPU time does not (it still counts memory stalls).
  const timed = (fn) => async () => {
    const c = process.cpuUsage();
    const s = process.hrtime.bigint();
    fn();
    const wall = Number(process.hrtime.bigint() - s) / 1e9;
    const cpu = process.cpuUsage(c);
    return { wall, cpu: (cpu.user + cpu.system) / 1e6 };
  };
  const cases = {
    memcpy: ['memcpy (Float32Array.set)', timed(() => { for (const v of clients) dst.set(v); })],
    buffer: ['memcpy (Buffer.copy)', timed(() => { for (const v of clients) Buffer.from(v.buffer, v.byteOffset, v.byteLength).copy(buf); })],
    fedavg: [`FedAvg, fused, '${cpuCompute.name}' kernels (default)`, timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS))],
    scalar: ["FedAvg, fused, 'cpu-scalar' kernels", timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS, { compute: scalar }))],
    unfused: [`FedAvg, unfused (fuseWidth 1), '${cpuCompute.name}'`, timed(() => fedavgShards(clients, weights, P, SHARDS, 0, SHARDS, { fuseWidth: 1 }))],
  };
  if (flower !== undefined) {
    cases.flower = ['Flower aggregate (numpy)', async () => {
      const r = await flower.ask('run');
      return { wall: r.seconds, cpu: r.cpuSeconds };
    }];
  }
  // Interleaved (Flower included: its process waits for each turn), so that load from other
  // processes hits every measurement alike; medians of REPS, ratios taken within each repetition.
  const runs = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (const [, run] of Object.values(cases)) await run();
  for (let r = 0; r < REPS; r++) {
    for (const [k, [, run]] of Object.entries(cases)) runs[k].push(await run());
  }
  const secs = (k, clock) => runs[k].map((x) => x[clock]);
  const gbps = (k, clock) => bytes / median(secs(k, clock)) / GB;
  const ratio = (a, b, clock) => median(secs(a, clock).map((t, r) => secs(b, clock)[r] / t));
  const spread = (k) => `${fmt(bytes / Math.max(...secs(k, 'wall')) / GB)}..${fmt(bytes / Math.min(...secs(k, 'wall')) / GB)}`;
  console.log(`medians of ${REPS} interleaved repetitions (wall-clock range in brackets); ratios are medians of per-repetition ratios`);
  console.log(`${''.padEnd(45)} ${'wall clock GB/s'.padEnd(23)}/memcpy  /Flower   ${'CPU time GB/s'.padEnd(14)}/memcpy  /Flower`);
  const col = (x, w) => (x === undefined ? '' : fmt(x)).padStart(w);
  for (const [k, [label]] of Object.entries(cases)) {
    const vsMemcpy = k === 'memcpy' || k === 'buffer' ? undefined : (clock) => ratio(k, 'memcpy', clock);
    const vsFlower = flower === undefined || !['fedavg', 'scalar', 'unfused'].includes(k) ? undefined : (clock) => ratio(k, 'flower', clock);
    console.log(`${label.padEnd(45)} ${col(gbps(k, 'wall'), 6)}  ${`[${spread(k)}]`.padEnd(15)} ${col(vsMemcpy?.('wall'), 7)}  ${col(vsFlower?.('wall'), 7)}   `
      + `${col(gbps(k, 'cpu'), 6)}        ${col(vsMemcpy?.('cpu'), 7)}  ${col(vsFlower?.('cpu'), 7)}`);
  }
  console.log(`SIMD / scalar kernels within FedAvg: ${fmt(ratio('fedavg', 'scalar', 'wall'))}x wall clock, ${fmt(ratio('fedavg', 'scalar', 'cpu'))}x CPU time`);
  const met = (ok) => (ok ? 'met' : 'NOT met');
  const goals = (clock) => `>= 0.5 of memcpy ${met(ratio('fedavg', 'memcpy', clock) >= 0.5)}; >= 2x Flower `
    + (flower === undefined ? 'not measured' : met(ratio('fedavg', 'flower', clock) >= 2));
  console.log(`goals by wall clock: ${goals('wall')}; by CPU time: ${goals('cpu')}`);

  if (flower !== undefined) {
    // Same inputs, same result: Flower sums in float32, fedmm in float64, so they agree to ~1e-6.
    const theirs = await flower.ask('checksum');
    flower.close();
    const acc = new FedAvg().createShardAccumulator({ shardLength: 1000 });
    clients.forEach((v, c) => acc.add(`c${c}`, 0, v.subarray(0, 1000), weights[c]));
    const ours = acc.finish().reduce((x, y) => x + y, 0);
    console.log(`checksum of 1000 results                      fedmm ${ours.toExponential(6)}   Flower ${theirs.checksum.toExponential(6)} (${theirs.dtype})`);
  }
  return { clients, weights };
}

async function workersSection(clients, weights) {
  const sab = new SharedArrayBuffer(K * P * 4);
  clients.forEach((v, c) => new Float32Array(sab, c * P * 4, P).set(v));
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
  if (env.GLIBC_TUNABLES) console.log(`GLIBC_TUNABLES=${env.GLIBC_TUNABLES} (inherited by Flower's process)`);
  // Peak RSS first: a child's maxRSS starts from its parent's RSS at fork, so the parent must be small.
  if (SECTIONS.has('rss')) rssSection();
  if (SECTIONS.has('throughput') || SECTIONS.has('workers')) {
    const { clients, weights } = await throughputSection();
    if (SECTIONS.has('workers')) await workersSection(clients, weights);
  }
}
