export * from './errors.js';
export * from './config.js';
export * from './log.js';
export * from './util.js';
export * from './span.js';
