export * from './names.js';
export * from './certificates.js';
export * from './identity.js';
export * from './credentials.js';
export * from './layout.js';
export * from './pki-dir.js';
