import type { Rng } from '../prng.js';
import type { IncidentClass } from './classes.js';

/** Steps in a synthetic series (the model's length, so no resampling is needed for the benchmark). */
export const SYNTH_SENSOR_STEPS = 64;
/** Channels: 0 temperature, 1 electrical current, 2 vibration / acoustic level (normalised units). */
export const SYNTH_SENSOR_CHANNELS = 3;

/** A company's sensors: calibration offsets and gains (feature shift) and noise level. */
export interface SensorProfile {
  readonly offset: readonly [number, number, number];
  readonly gain: readonly [number, number, number];
  readonly noise: number;
}

export const NEUTRAL_SENSORS: SensorProfile = { offset: [0, 0, 0], gain: [1, 1, 1], noise: 0.3 };

type Series = [Float64Array, Float64Array, Float64Array];

/** Each class's fault signature, added on top of a noisy baseline; `amp` scales it per sample. */
const SIGNATURES: Record<IncidentClass, (s: Series, rng: Rng, amp: number) => void> = {
  transformer_overheat(s, rng, amp) {
    const t0 = rng.int(14, 38), rise = amp * rng.uniform(2, 3);
    for (let t = t0; t < 64; t++) {
      s[0][t] = (s[0][t] as number) + (rise * (t - t0)) / (64 - t0);
      s[1][t] = (s[1][t] as number) + (0.5 * amp * (t - t0)) / (64 - t0);
    }
  },
  line_fault(s, rng, amp) {
    const t0 = rng.int(12, 44);
    s[1][t0] = (s[1][t0] as number) + amp * rng.uniform(4, 6);
    s[1][t0 + 1] = (s[1][t0 + 1] as number) + amp * rng.uniform(1, 3);
    for (let t = t0 + 2; t < 64; t++) s[1][t] = (s[1][t] as number) * 0.3 - 1.5 * amp;
    s[2][t0] = (s[2][t0] as number) + amp * 1.5;
  },
  intrusion(s, rng, amp) {
    const pulses = rng.int(2, 4);
    for (let k = 0; k < pulses; k++) {
      const t0 = rng.int(16, 60);
      for (let t = t0; t < Math.min(64, t0 + 2); t++) s[2][t] = (s[2][t] as number) + amp * rng.uniform(2, 3);
    }
  },
  fire_smoke(s, rng, amp) {
    const t0 = rng.int(16, 40), k = rng.uniform(0.08, 0.14);
    for (let t = t0; t < 64; t++) {
      s[0][t] = (s[0][t] as number) + amp * Math.min(4, Math.expm1(k * (t - t0)));
      s[2][t] = (s[2][t] as number) + amp * rng.normal(0, 0.8);
    }
  },
  water_leak(s, rng, amp) {
    const period = rng.uniform(14, 22), phase = rng.uniform(0, 2 * Math.PI);
    for (let t = 0; t < 64; t++) {
      s[0][t] = (s[0][t] as number) - (amp * 1.5 * t) / 63;
      s[1][t] = (s[1][t] as number) + amp * Math.sin((2 * Math.PI * t) / period + phase);
    }
  },
  traffic_collision(s, rng, amp) {
    const t0 = rng.int(10, 54);
    s[2][t0] = (s[2][t0] as number) + amp * rng.uniform(5, 7);
    for (let t = t0 + 1; t < Math.min(64, t0 + 5); t++) s[2][t] = (s[2][t] as number) + amp * (1.5 / (t - t0));
    for (let t = t0; t < 64; t++) s[1][t] = (s[1][t] as number) + amp * 0.6;
  },
  crowd_surge(s, rng, amp) {
    const period = rng.uniform(4, 8), phase = rng.uniform(0, 2 * Math.PI);
    for (let t = 0; t < 64; t++) s[2][t] = (s[2][t] as number) + amp * 2.5 * (t / 63) * Math.sin((2 * Math.PI * t) / period + phase);
  },
  streetlight_outage(s, rng, amp) {
    const t0 = rng.int(10, 50);
    for (let t = t0; t < 64; t++) {
      s[1][t] = (s[1][t] as number) * (1 - amp * 0.9) - 2 * amp;
      s[0][t] = (s[0][t] as number) - 0.4 * amp;
    }
  },
};

/**
 * Generates a 3 x 64 series: slow daily swing plus AR(1) noise per channel, the class's fault
 * signature (weak in a share of samples), then the company's calibration.
 */
export function generateSensorSeries(cls: IncidentClass, rng: Rng, profile: SensorProfile, weakRate: number): number[][] {
  const s: Series = [new Float64Array(64), new Float64Array(64), new Float64Array(64)];
  for (let c = 0; c < 3; c++) {
    const ch = s[c] as Float64Array;
    const level = rng.normal(0, 0.3), swing = rng.uniform(0, 0.4), phase = rng.uniform(0, 2 * Math.PI);
    let ar = 0;
    for (let t = 0; t < 64; t++) {
      ar = 0.6 * ar + rng.normal(0, profile.noise);
      ch[t] = level + swing * Math.sin((2 * Math.PI * t) / 64 + phase) + ar;
    }
  }
  const amp = rng.bool(weakRate) ? rng.uniform(0.25, 0.45) : rng.uniform(0.8, 1.2);
  SIGNATURES[cls](s, rng, amp);
  return s.map((ch, c) => Array.from(ch, (x) => Math.round(((x * (profile.gain[c] as number)) + (profile.offset[c] as number)) * 1000) / 1000));
}
