import type { TrainProgress } from './loop.js';

/** A one-line text progress bar for a training run, e.g. for a terminal that redraws with '\r'. */
export function renderProgress(p: TrainProgress, width = 24): string {
  const total = p.epochs * p.stepsPerEpoch;
  const done = (p.epoch - 1) * p.stepsPerEpoch + p.step;
  const filled = Math.round((done / total) * width);
  const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
  return `[${bar}] epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch} loss ${p.loss.toFixed(4)} ${p.samplesPerSec.toFixed(0)} samples/s`;
}
