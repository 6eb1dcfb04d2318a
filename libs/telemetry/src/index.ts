export * from './sdk.js';
export * from './metrics.js';
