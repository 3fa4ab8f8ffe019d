import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { onTestFinished } from 'vitest';

/** What a shim does when its command name (and `match`, if given, is one of its arguments) fits. */
export interface ShimRule {
  readonly cmd: string;
  readonly match?: string;
  readonly exitCode?: number;
  readonly stdout?: string;
  readonly stderr?: string;
  readonly chunks?: readonly { readonly text: string; readonly stream?: 'stdout' | 'stderr' }[];
  readonly delayMs?: number;
  readonly sleepMs?: number;
  readonly echoStdin?: boolean;
}

export interface Call {
  readonly cmd: string;
  readonly argv: readonly string[];
  readonly stdin?: string;
}

export interface Shims {
  readonly dir: string;
  /** Absolute path of each shim, by command name. */
  readonly paths: Readonly<Record<string, string>>;
  setRules(rules: readonly ShimRule[]): Promise<void>;
  /** The calls so far, in order. */
  calls(): Promise<Call[]>;
}

const SHIM = pathToFileURL(join(import.meta.dirname, 'fixtures', 'recording-shim.mjs')).href;

/**
 * Recording shims for `names`, in a temp dir removed after the test. Shared by the jail and
 * macOS driver tests: the drivers get these paths through their `commands` option and
 * never look anything up in PATH.
 */
export async function makeShims(names: readonly string[]): Promise<Shims> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-shims-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const paths: Record<string, string> = {};
  for (const name of names) {
    const path = join(dir, 'bin', name);
    paths[name] = path;
  }
  await writeFile(join(dir, 'log'), '');
  await mkdir(join(dir, 'bin'));
  for (const [name, path] of Object.entries(paths)) {
    // CommonJS (no extension, no package.json): a dynamic import loads the ES module.
    await writeFile(path, `#!${process.execPath}\nimport(${JSON.stringify(SHIM)}).then((m) => m.shim(${JSON.stringify(name)}, ${JSON.stringify(dir)}));\n`);
    await chmod(path, 0o755);
  }
  const shims: Shims = {
    dir,
    paths,
    setRules: (rules) => writeFile(join(dir, 'rules.json'), JSON.stringify(rules)),
    calls: async () =>
      (await readFile(join(dir, 'log'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Call),
  };
  await shims.setRules([]);
  return shims;
}

/** A call as `name arg arg...`, for readable sequence assertions. */
export function line(call: Call): string {
  return [call.cmd, ...call.argv].join(' ');
}
