export * from './special.js';
export * from './rdp.js';
