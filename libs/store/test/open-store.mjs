// A process that opens a store (init: a crash's leftovers are removed) and exits:
// `node --import tsx open-store.mjs STORE-SPEC`. Several at once share one store.
const storeLib = await import('../src/index.ts');
await storeLib.parseStoreSpec(process.argv[2]).init();
process.stdout.write('opened\n');
