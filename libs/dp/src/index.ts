export * from './special.js';
export * from './rdp.js';
export * from './pld.js';
export * from './calibrate.js';
