import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DockerStore, mirrorHostTree } from '../src/docker-store.js';
import { robocopyMirrorArgs } from '../src/robocopy.js';

// The docker store's cache copies on a Windows host: robocopy, not cp. Windows cannot run
// here, so robocopy is a recording shim (it logs its argv and exits with the status a test
// asks for); the Linux form runs for real.

describe('docker store cache copies by host OS', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-hostcopy-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A recording `robocopy` shim that exits with `status`. */
  async function robocopyShim(status: number, output = ''): Promise<string> {
    const path = join(dir, `robocopy-shim-${status}`);
    await writeFile(path, `#!/bin/sh\nprintf '%s\\n' "$@" > '${join(dir, 'argv')}'\nprintf '${output}'\nexit ${status}\n`);
    await chmod(path, 0o755);
    return path;
  }

  it('Windows: one robocopy /MIR with owners and ACLs, links as links, no retries', () => {
    expect(robocopyMirrorArgs('C:\\ProgramData\\docker\\volumes\\c\\_data', 'C:\\ProgramData\\docker\\volumes\\v\\_data')).toEqual([
      'C:\\ProgramData\\docker\\volumes\\c\\_data',
      'C:\\ProgramData\\docker\\volumes\\v\\_data',
      '/MIR',
      '/COPY:DATSO',
      '/DCOPY:DAT',
      '/SL',
      '/R:0',
      '/W:0',
      '/NP',
      '/NFL',
      '/NDL',
      '/NJH',
      '/NJS',
    ]);
  });

  it('Windows: robocopy exit statuses below 8 are success (1 copied, 2 extras, 4 mismatches)', async () => {
    for (const status of [0, 1, 3, 7]) {
      await mirrorHostTree('windows', 'C:\\src', 'C:\\dst', await robocopyShim(status));
      expect((await readFile(join(dir, 'argv'), 'utf8')).split('\n').slice(0, 3)).toEqual(['C:\\src', 'C:\\dst', '/MIR']);
    }
  });

  it('Windows: 8 and up fail with what robocopy said, naming both trees', async () => {
    await expect(mirrorHostTree('windows', 'C:\\src', 'C:\\dst', await robocopyShim(8, 'ERROR 5 (0x00000005) Access is denied.'))).rejects.toThrow(
      'robocopy could not mirror C:\\src to C:\\dst (exit 8: some files could not be copied): ERROR 5 (0x00000005) Access is denied.',
    );
    await expect(mirrorHostTree('windows', 'C:\\src', 'C:\\dst', await robocopyShim(16))).rejects.toThrow('(exit 16: fatal error, nothing copied)');
    await expect(mirrorHostTree('windows', 'C:\\src', 'C:\\dst', join(dir, 'no-robocopy'))).rejects.toThrow(
      /robocopy could not mirror C:\\src to C:\\dst \(.*ENOENT/,
    );
  });

  it('Linux (run for real): the target becomes an exact copy, stale entries gone, links kept', async () => {
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'sub', 'file'), 'new');
    await symlink('sub/file', join(src, 'link'));
    await mkdir(join(dst, 'stale'), { recursive: true });
    await writeFile(join(dst, 'stale', 'old'), 'old');
    await mirrorHostTree('linux', src, dst);
    expect((await readdir(dst)).sort()).toEqual(['link', 'sub']);
    expect(await readFile(join(dst, 'sub', 'file'), 'utf8')).toBe('new');
    expect(await readlink(join(dst, 'link'))).toBe('sub/file');
  });

  it("the store picks the form from the host OS, this process's by default", () => {
    expect(new DockerStore(dir).hostOs).toBe(process.platform === 'win32' ? 'windows' : 'linux');
    expect(new DockerStore(dir, { hostOs: 'windows' }).hostOs).toBe('windows');
  });
});
