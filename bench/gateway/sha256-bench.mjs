// Throughput of the upload hash: node:crypto (not resumable) against ResumableSha256 (hash-wasm,
// state exportable), over the same bytes in 1 MiB pieces, plus the cost of one exported state.
// Run after `npx tsc -b libs/tensor`: node bench/gateway/sha256-bench.mjs [--quick]
import { createHash, randomBytes } from 'node:crypto';
import { ResumableSha256 } from '../../libs/tensor/dist/index.js';

const quick = process.argv.includes('--quick');
const totalMiB = quick ? 64 : 512;
const piece = randomBytes(1 << 20);
const reps = 3;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function measure(run) {
  const times = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  return totalMiB / (median(times) / 1000);
}

const nodeMBs = await measure(async () => {
  const h = createHash('sha256');
  for (let i = 0; i < totalMiB; i++) h.update(piece);
  h.digest('hex');
});
const wasmMBs = await measure(async () => {
  const h = await ResumableSha256.create();
  for (let i = 0; i < totalMiB; i++) h.update(piece);
  h.digestHex();
});
const h = await ResumableSha256.create();
h.update(piece);
const n = 100_000;
let t = performance.now();
for (let i = 0; i < n; i++) h.exportState();
const exportUs = ((performance.now() - t) * 1000) / n;
const state = h.exportState();
t = performance.now();
for (let i = 0; i < 1000; i++) await ResumableSha256.resume(state);
const resumeUs = (performance.now() - t);

console.log(`sha256 over ${totalMiB} MiB in 1 MiB pieces (median of ${reps})`);
console.log(`  node:crypto (baseline)    ${nodeMBs.toFixed(0).padStart(6)} MB/s`);
console.log(`  ResumableSha256 (wasm)    ${wasmMBs.toFixed(0).padStart(6)} MB/s   ratio ${(wasmMBs / nodeMBs).toFixed(2)}`);
console.log(`  exportState               ${exportUs.toFixed(2).padStart(6)} us per checkpoint (${JSON.stringify(state).length} bytes of JSON)`);
console.log(`  resume                    ${resumeUs.toFixed(0).padStart(6)} us per resumed session`);
