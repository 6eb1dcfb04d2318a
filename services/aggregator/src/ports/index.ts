export * from './peers.js';
export * from './registry-port.js';
