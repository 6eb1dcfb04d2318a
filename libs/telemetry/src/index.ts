export * from './sdk.js';
export * from './metrics.js';
export * from './store.js';
