import type { Rng } from '../prng.js';
import type { RgbImage } from '../image.js';

export type Color = readonly [number, number, number];

/** A tiny float RGB raster with the few primitives the procedural scenes need. */
export class Canvas {
  readonly data: Float32Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Float32Array(width * height * 3);
  }

  private blend(i: number, c: Color, a: number): void {
    const p = i * 3;
    const d = this.data;
    d[p] = (d[p] as number) * (1 - a) + c[0] * a;
    d[p + 1] = (d[p + 1] as number) * (1 - a) + c[1] * a;
    d[p + 2] = (d[p + 2] as number) * (1 - a) + c[2] * a;
  }

  /** Vertical gradient between two colours over rows [y0, y1). */
  gradient(top: Color, bottom: Color, y0 = 0, y1 = this.height): void {
    for (let y = Math.max(0, Math.floor(y0)); y < Math.min(this.height, Math.ceil(y1)); y++) {
      const f = (y - y0) / Math.max(1, y1 - y0 - 1);
      const c: Color = [top[0] + (bottom[0] - top[0]) * f, top[1] + (bottom[1] - top[1]) * f, top[2] + (bottom[2] - top[2]) * f];
      for (let x = 0; x < this.width; x++) this.blend(y * this.width + x, c, 1);
    }
  }

  /** Rectangle rotated by `angle` radians around its centre. */
  rect(cx: number, cy: number, w: number, h: number, color: Color, alpha = 1, angle = 0): void {
    const cos = Math.cos(angle), sin = Math.sin(angle);
    const r = Math.ceil(Math.hypot(w, h) / 2) + 1;
    for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(this.height, Math.ceil(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(this.width, Math.ceil(cx + r)); x++) {
        const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const u = dx * cos + dy * sin, v = -dx * sin + dy * cos;
        if (Math.abs(u) <= w / 2 && Math.abs(v) <= h / 2) this.blend(y * this.width + x, color, alpha);
      }
    }
  }

  /** Ellipse with a soft edge. */
  ellipse(cx: number, cy: number, rx: number, ry: number, color: Color, alpha = 1): void {
    for (let y = Math.max(0, Math.floor(cy - ry - 1)); y < Math.min(this.height, Math.ceil(cy + ry + 1)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx - 1)); x < Math.min(this.width, Math.ceil(cx + rx + 1)); x++) {
        const dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry;
        const d = Math.sqrt(dx * dx + dy * dy);
        const edge = Math.min(1, Math.max(0, (1 - d) * Math.min(rx, ry)));
        if (edge > 0) this.blend(y * this.width + x, color, alpha * edge);
      }
    }
  }

  /** Additive Gaussian glow, for fire, sparks and lamps. */
  glow(cx: number, cy: number, radius: number, color: Color, strength: number): void {
    const r = radius * 3;
    for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(this.height, Math.ceil(cy + r)); y++) {
      for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(this.width, Math.ceil(cx + r)); x++) {
        const d2 = ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2) / (radius * radius);
        const a = strength * Math.exp(-d2 / 2);
        const p = (y * this.width + x) * 3;
        for (let k = 0; k < 3; k++) this.data[p + k] = Math.min(1, (this.data[p + k] as number) + a * (color[k] as number));
      }
    }
  }

  /** Line segment of the given width. */
  line(x0: number, y0: number, x1: number, y1: number, width: number, color: Color, alpha = 1): void {
    const len2 = (x1 - x0) ** 2 + (y1 - y0) ** 2 || 1;
    const pad = width + 1;
    for (let y = Math.max(0, Math.floor(Math.min(y0, y1) - pad)); y < Math.min(this.height, Math.ceil(Math.max(y0, y1) + pad)); y++) {
      for (let x = Math.max(0, Math.floor(Math.min(x0, x1) - pad)); x < Math.min(this.width, Math.ceil(Math.max(x0, x1) + pad)); x++) {
        const px = x + 0.5, py = y + 0.5;
        const t = Math.min(1, Math.max(0, ((px - x0) * (x1 - x0) + (py - y0) * (y1 - y0)) / len2));
        const d = Math.hypot(px - (x0 + t * (x1 - x0)), py - (y0 + t * (y1 - y0)));
        const a = Math.min(1, Math.max(0, width / 2 + 0.5 - d));
        if (a > 0) this.blend(y * this.width + x, color, alpha * a);
      }
    }
  }

  /** Per-pixel Gaussian noise (sensor grain). */
  noise(rng: Rng, sd: number): void {
    for (let i = 0; i < this.data.length; i++) this.data[i] = (this.data[i] as number) + rng.normal(0, sd);
  }

  /** Box blur of the given radius (defocus). */
  blur(radius: number): void {
    if (radius <= 0) return;
    const { width: w, height: h } = this;
    const src = Float32Array.from(this.data);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let r = 0, g = 0, b = 0, n = 0;
        for (let dy = -radius; dy <= radius; dy++) {
          const yy = Math.min(h - 1, Math.max(0, y + dy));
          for (let dx = -radius; dx <= radius; dx++) {
            const xx = Math.min(w - 1, Math.max(0, x + dx));
            const p = (yy * w + xx) * 3;
            r += src[p] as number;
            g += src[p + 1] as number;
            b += src[p + 2] as number;
            n++;
          }
        }
        const q = (y * w + x) * 3;
        this.data[q] = r / n;
        this.data[q + 1] = g / n;
        this.data[q + 2] = b / n;
      }
    }
  }

  /** Quantises to 8-bit RGB. */
  toRgb(): RgbImage {
    const out = new Uint8Array(this.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, this.data[i] as number)) * 255);
    return { width: this.width, height: this.height, data: out };
  }
}
