// A process that dies mid-build: started by the store behaviour suite as
// `node crashing-build.mjs STORE-SPEC PARENT ID`, it builds ID on PARENT, takes a cache
// view inside the build, prints "ready" and waits there to be killed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setInterval } from 'node:timers';

const [spec, parent, id] = process.argv.slice(2);
// Run with `node --import tsx`, which loads the TypeScript sources (and the modules they
// load later, such as execa) as vitest does for the tests.
const storeLib = await import('../src/index.ts');
const store = storeLib.parseStoreSpec(spec);
await store.build(parent, id, async (dir) => {
  await writeFile(join(dir, 'rootfs', 'half-written'), 'the process dies before publishing this');
  await store.cache('crash-cache', { kind: 'unix', uid: 0, gid: 0 });
  process.stdout.write('ready\n');
  await new Promise(() => setInterval(() => undefined, 60_000));
});
