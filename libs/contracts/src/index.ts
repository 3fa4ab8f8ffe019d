export * from './subjects.js';
export * from './streams.js';
export * from './schemas.js';
export * from './reply.js';
export * from './rpc.js';
export * from './sealed-box.js';
export * from './bus.js';
export * from './write-once-object.js';
