import type { Rng } from '../prng.js';
import { Canvas, type Color } from './canvas.js';
import type { IncidentClass } from './classes.js';

/** Side of the rendered synthetic images (the loader resizes them to the model's 32x32). */
export const SYNTH_IMAGE_SIZE = 48;

/** A company's camera: how its images differ from the public ones (feature shift). */
export interface CameraProfile {
  /** Per-channel gain (colour cast). */
  readonly cast: readonly [number, number, number];
  /** Added to every channel after the cast. */
  readonly brightness: number;
  /** Contrast around mid-grey. */
  readonly contrast: number;
  /** Box-blur radius in pixels (defocus, compression). */
  readonly blur: number;
  /** Sensor grain, standard deviation in [0,1] units. */
  readonly noise: number;
  /** Darkening towards the corners, 0 = none. */
  readonly vignette: number;
}

/** A neutral camera, used for the public split. */
export const NEUTRAL_CAMERA: CameraProfile = { cast: [1, 1, 1], brightness: 0, contrast: 1, blur: 0, noise: 0.03, vignette: 0 };

const jitter = (rng: Rng, c: Color, amount: number): Color => [
  c[0] + rng.normal(0, amount),
  c[1] + rng.normal(0, amount),
  c[2] + rng.normal(0, amount),
];

function outdoorDay(cv: Canvas, rng: Rng, horizon: number): void {
  cv.gradient(jitter(rng, [0.55, 0.68, 0.85], 0.06), jitter(rng, [0.78, 0.82, 0.86], 0.05), 0, horizon);
  cv.gradient(jitter(rng, [0.42, 0.46, 0.36], 0.05), jitter(rng, [0.32, 0.34, 0.28], 0.05), horizon, cv.height);
}

function night(cv: Canvas, rng: Rng): void {
  cv.gradient(jitter(rng, [0.05, 0.07, 0.16], 0.03), jitter(rng, [0.12, 0.12, 0.16], 0.03));
}

function indoor(cv: Canvas, rng: Rng): void {
  const floor = cv.height * rng.uniform(0.5, 0.65);
  cv.gradient(jitter(rng, [0.75, 0.72, 0.66], 0.05), jitter(rng, [0.68, 0.65, 0.6], 0.05), 0, floor);
  cv.gradient(jitter(rng, [0.6, 0.55, 0.48], 0.05), jitter(rng, [0.55, 0.5, 0.44], 0.05), floor, cv.height);
}

function road(cv: Canvas, rng: Rng): void {
  cv.gradient(jitter(rng, [0.3, 0.3, 0.32], 0.04), jitter(rng, [0.26, 0.26, 0.28], 0.04));
}

function plaza(cv: Canvas, rng: Rng): void {
  cv.gradient(jitter(rng, [0.66, 0.64, 0.6], 0.05), jitter(rng, [0.58, 0.56, 0.52], 0.05));
}

type Background = 'day' | 'night' | 'indoor' | 'road' | 'plaza';
const BACKGROUNDS: Record<Background, (cv: Canvas, rng: Rng) => void> = {
  day: (cv, rng) => outdoorDay(cv, rng, cv.height * rng.uniform(0.45, 0.8)),
  night,
  indoor,
  road,
  plaza,
};
/** The setting each class is usually seen in; a share of images use any other setting. */
const TYPICAL_BACKGROUND: Record<IncidentClass, Background> = {
  transformer_overheat: 'day',
  line_fault: 'day',
  intrusion: 'night',
  fire_smoke: 'indoor',
  water_leak: 'indoor',
  traffic_collision: 'road',
  crowd_surge: 'plaza',
  streetlight_outage: 'night',
};
/** Share of images whose setting is not the class's usual one. */
const ATYPICAL_BACKGROUND_RATE = 0.35;

/** Objects that appear in any scene and belong to no incident. */
function distractor(cv: Canvas, rng: Rng, s: number): void {
  const x = s * rng.uniform(0.1, 0.9), y = s * rng.uniform(0.3, 0.9);
  switch (rng.int(0, 3)) {
    case 0:
      cv.rect(x, y, s * rng.uniform(0.1, 0.25), s * rng.uniform(0.1, 0.2), jitter(rng, [0.45, 0.45, 0.45], 0.1));
      break;
    case 1:
      cv.line(x, y - s * 0.3, x, y + s * 0.1, 1.2, jitter(rng, [0.3, 0.28, 0.25], 0.05));
      break;
    case 2:
      cv.ellipse(x, y, s * 0.05, s * 0.12, jitter(rng, [0.15, 0.15, 0.18], 0.05));
      break;
    default:
      cv.rect(x, y, s * 0.22, s * 0.11, jitter(rng, [0.5, 0.5, 0.5], 0.2), 1, rng.uniform(0, Math.PI));
  }
}

/** A scene whose layout varies per sample while the class's visual signature stays. */
const SCENES: Record<IncidentClass, (cv: Canvas, rng: Rng, s: number) => void> = {
  transformer_overheat(cv, rng, s) {
    const cx = s * rng.uniform(0.3, 0.7), cy = s * rng.uniform(0.5, 0.7), w = s * rng.uniform(0.25, 0.4), h = s * rng.uniform(0.25, 0.35);
    cv.rect(cx, cy, w, h, jitter(rng, [0.5, 0.52, 0.55], 0.04));
    for (let k = -2; k <= 2; k++) cv.rect(cx + (k * w) / 5, cy, w / 14, h * 0.9, [0.32, 0.33, 0.36]);
    cv.glow(cx + rng.normal(0, s * 0.05), cy - h * 0.2, s * rng.uniform(0.1, 0.18), [1, 0.45, 0.1], rng.uniform(0.5, 0.9));
  },
  line_fault(cv, rng, s) {
    const px = s * rng.uniform(0.15, 0.85);
    cv.rect(px, s * 0.55, s * 0.05, s * 0.9, [0.35, 0.25, 0.15]);
    const lines = rng.int(2, 3);
    let sparkY = 0;
    for (let k = 0; k < lines; k++) {
      const y = s * (0.15 + 0.12 * k) + rng.normal(0, 1.5);
      cv.line(0, y, s, y + rng.normal(0, s * 0.06), 1.2, [0.1, 0.1, 0.1]);
      if (k === 0) sparkY = y;
    }
    const sx = px + rng.normal(0, s * 0.08);
    cv.glow(sx, sparkY, s * rng.uniform(0.05, 0.09), [1, 0.95, 0.5], rng.uniform(0.8, 1.2));
    let x = sx, y = sparkY;
    for (let k = 0; k < 3; k++) {
      const nx = x + rng.normal(0, 3), ny = y + rng.uniform(2, 5);
      cv.line(x, y, nx, ny, 1, [1, 1, 0.7]);
      x = nx;
      y = ny;
    }
  },
  intrusion(cv, rng, s) {
    const wallTop = s * rng.uniform(0.2, 0.35);
    cv.rect(s / 2, (wallTop + s) / 2, s, s - wallTop, jitter(rng, [0.22, 0.18, 0.16], 0.03));
    const wx = s * rng.uniform(0.2, 0.8), wy = s * rng.uniform(0.45, 0.6);
    cv.rect(wx, wy, s * 0.22, s * 0.18, [0.75, 0.65, 0.3], rng.uniform(0.6, 0.95));
    const fx = wx + (rng.bool(0.5) ? -1 : 1) * s * rng.uniform(0.1, 0.2), fy = s * rng.uniform(0.6, 0.72);
    cv.ellipse(fx, fy, s * 0.07, s * 0.17, [0.02, 0.02, 0.03]);
    cv.ellipse(fx, fy - s * 0.21, s * 0.055, s * 0.055, [0.02, 0.02, 0.03]);
    if (rng.bool(0.5)) cv.glow(fx + s * 0.08, fy - s * 0.05, s * 0.04, [0.9, 0.9, 0.8], 0.7);
  },
  fire_smoke(cv, rng, s) {
    const base = s * rng.uniform(0.75, 0.9);
    const cx = s * rng.uniform(0.3, 0.7);
    const smoke = rng.uniform(0.4, 0.9);
    for (let k = 0; k < 5; k++) {
      cv.ellipse(cx + rng.normal(0, s * 0.15), s * rng.uniform(0.1, 0.45), s * rng.uniform(0.1, 0.2), s * rng.uniform(0.08, 0.14), jitter(rng, [0.45, 0.45, 0.47], 0.04), smoke * 0.7);
    }
    for (let k = 0; k < 4; k++) {
      cv.glow(cx + rng.normal(0, s * 0.1), base - rng.uniform(0, s * 0.2), s * rng.uniform(0.05, 0.1), [1, rng.uniform(0.35, 0.6), 0.05], rng.uniform(0.6, 1));
    }
  },
  water_leak(cv, rng, s) {
    const floor = s * rng.uniform(0.5, 0.65);
    const pipeY = s * rng.uniform(0.1, 0.25);
    cv.rect(s / 2, pipeY, s, s * 0.06, [0.5, 0.52, 0.55]);
    const dx = s * rng.uniform(0.25, 0.75);
    for (let k = 0; k < rng.int(2, 4); k++) cv.ellipse(dx + rng.normal(0, 1), pipeY + s * 0.08 + k * s * 0.1, 1.2, 1.8, [0.2, 0.45, 0.85], 0.9);
    for (let k = 0; k < rng.int(1, 3); k++) {
      cv.ellipse(dx + rng.normal(0, s * 0.12), floor + s * rng.uniform(0.1, 0.3), s * rng.uniform(0.15, 0.3), s * rng.uniform(0.04, 0.08), jitter(rng, [0.25, 0.45, 0.8], 0.05), 0.8);
    }
  },
  traffic_collision(cv, rng, s) {
    const laneX = s * rng.uniform(0.35, 0.65);
    for (let y = rng.uniform(0, 6); y < s; y += 10) cv.rect(laneX, y, 1.5, 5, [0.9, 0.9, 0.85]);
    const cx = s * rng.uniform(0.35, 0.65), cy = s * rng.uniform(0.35, 0.65);
    const a1 = rng.uniform(0, Math.PI), a2 = a1 + rng.uniform(0.6, 1.4);
    cv.rect(cx - s * 0.08, cy, s * 0.3, s * 0.15, jitter(rng, [0.8, 0.1, 0.1], 0.1), 1, a1);
    cv.rect(cx + s * 0.08, cy + s * 0.04, s * 0.3, s * 0.15, jitter(rng, [0.15, 0.3, 0.8], 0.1), 1, a2);
    for (let k = 0; k < 6; k++) cv.ellipse(cx + rng.normal(0, s * 0.12), cy + rng.normal(0, s * 0.12), 0.9, 0.9, [0.85, 0.85, 0.8], 0.9);
  },
  crowd_surge(cv, rng, s) {
    const cx = s * rng.uniform(0.35, 0.65), cy = s * rng.uniform(0.4, 0.6), spread = s * rng.uniform(0.16, 0.26);
    const n = rng.int(45, 80);
    for (let k = 0; k < n; k++) {
      const clothes: Color = [rng.uniform(0.05, 0.9), rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.7)];
      cv.ellipse(cx + rng.normal(0, spread), cy + rng.normal(0, spread * 0.8), 1.7, 1.7, clothes);
    }
  },
  streetlight_outage(cv, rng, s) {
    cv.rect(s / 2, s * 0.88, s, s * 0.24, jitter(rng, [0.14, 0.14, 0.15], 0.02));
    const posts = rng.int(3, 4);
    const dark = rng.int(0, posts - 1);
    for (let k = 0; k < posts; k++) {
      const x = (s * (k + 0.5)) / posts + rng.normal(0, 1.5);
      const top = s * rng.uniform(0.25, 0.35);
      cv.line(x, top, x, s * 0.8, 1.1, [0.3, 0.3, 0.32]);
      if (k === dark || rng.bool(0.25)) cv.ellipse(x, top, 1.8, 1.2, [0.15, 0.15, 0.15]);
      else cv.glow(x, top, s * 0.05, [1, 0.85, 0.45], 0.9);
    }
  },
};

/** Applies a company's camera to a rendered scene. */
function applyCamera(cv: Canvas, rng: Rng, cam: CameraProfile): void {
  cv.blur(cam.blur);
  const { width: w, height: h, data } = cv;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const r2 = ((x + 0.5) / w - 0.5) ** 2 + ((y + 0.5) / h - 0.5) ** 2;
      const v = 1 - cam.vignette * r2 * 2;
      const p = (y * w + x) * 3;
      for (let k = 0; k < 3; k++) {
        const c = ((data[p + k] as number) - 0.5) * cam.contrast + 0.5;
        data[p + k] = (c * (cam.cast[k] as number) + cam.brightness) * v;
      }
    }
  }
  cv.noise(rng, cam.noise);
}

/** Renders one incident image: the class's scene (faint in a `weakRate` share) seen through a company's camera. */
export function renderIncidentImage(cls: IncidentClass, rng: Rng, camera: CameraProfile, weakRate = 0): Canvas {
  const cv = new Canvas(SYNTH_IMAGE_SIZE, SYNTH_IMAGE_SIZE);
  const scene = rng.fork('scene');
  const bg = scene.bool(ATYPICAL_BACKGROUND_RATE) ? scene.pick(Object.keys(BACKGROUNDS) as Background[]) : TYPICAL_BACKGROUND[cls];
  BACKGROUNDS[bg](cv, scene);
  for (let k = scene.int(0, 2); k > 0; k--) distractor(cv, scene, SYNTH_IMAGE_SIZE);
  // A faint incident (far away, partly hidden, smoke-hazed) is blended over the bare scene.
  const faint = scene.bool(weakRate) ? scene.uniform(0.3, 0.55) : 1;
  const bare = faint < 1 ? Float32Array.from(cv.data) : undefined;
  SCENES[cls](cv, scene, SYNTH_IMAGE_SIZE);
  if (bare !== undefined) for (let i = 0; i < bare.length; i++) cv.data[i] = bare[i]! + (cv.data[i]! - bare[i]!) * faint;
  applyCamera(cv, rng.fork('camera'), camera);
  return cv;
}
