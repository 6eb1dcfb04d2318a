export * from './dtype.js';
export * from './crc32c.js';
export * from './sha256.js';
export * from './order.js';
export * from './safetensors.js';
export * from './safetensors-file.js';
