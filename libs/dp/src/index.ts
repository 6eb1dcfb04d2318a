export * from './special.js';
export * from './rdp.js';
export * from './pld.js';
export * from './calibrate.js';
export * from './noise.js';
export * from './dpsgd.js';
