export * from './fetcher.js';
