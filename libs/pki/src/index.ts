export * from './names.js';
export * from './certificates.js';
