export * from './manifest.js';
export * from './image.js';
export * from './sensor.js';
export * from './loader.js';
export { Rng } from './prng.js';
