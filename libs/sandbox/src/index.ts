export * from './sandbox.js';
export * from './oci-config.js';
export * from './runc-sandbox.js';
export * from './sandbox-spec.js';
