import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, fetcherSpecOf, readMachineConfig } from '@cairn/machine-config';

describe('the machine config', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cairn-machine-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is read from CAIRN_CONFIG, and is empty on a machine that was never set up', async () => {
    const file = join(dir, 'cairn.json');
    await writeFile(file, JSON.stringify({ store: 'btrfs:/var/cache/cairn', fetcher: 'registry:https://mirror.example' }));
    expect(await readMachineConfig({ CAIRN_CONFIG: file })).toEqual({ store: 'btrfs:/var/cache/cairn', fetcher: 'registry:https://mirror.example' });
    expect(await readMachineConfig({ CAIRN_CONFIG: join(dir, 'none.json') })).toEqual({});
  });

  it('that cannot be read is a ConfigError naming the file', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{ "store": ');
    const error = await readMachineConfig({ CAIRN_CONFIG: file }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(new RegExp(`^cannot read the machine config ${file}: `));
    expect((error as ConfigError).badValue).toBeUndefined();
  });

  it('names the fetcher after the explicit choice and CAIRN_FETCHER, else the local Docker daemon', () => {
    const config = { fetcher: 'oci:/srv/images' };
    expect(fetcherSpecOf({ fetcher: 'registry:https://r' }, config, { CAIRN_FETCHER: 'docker' })).toBe('registry:https://r');
    expect(fetcherSpecOf({}, config, { CAIRN_FETCHER: 'registry:https://env' })).toBe('registry:https://env');
    expect(fetcherSpecOf({}, config, {})).toBe('oci:/srv/images');
    expect(fetcherSpecOf({}, {}, {})).toBe('docker');
  });
});
