import { describe, expect, it } from 'vitest';
import { BtrfsStore, DockerStore, OverlayfsStore, parseStoreSpec, RsyncStore, STORE_KINDS, StoreSpecError, XfsStore, ZfsStore } from '../src/index.js';

describe('--store values', () => {
  it('name a driver and the absolute path of its root', () => {
    const cases = [
      ['btrfs:/var/lib/cairn', BtrfsStore, 'btrfs'],
      ['overlayfs:/var/lib/cairn', OverlayfsStore, 'overlayfs'],
      ['rsync:/var/lib/cairn', RsyncStore, 'rsync'],
      ['rsync-hardlink:/var/lib/cairn', RsyncStore, 'rsync-hardlink'],
      ['xfs:/var/lib/cairn', XfsStore, 'xfs'],
      ['docker:/var/lib/cairn', DockerStore, 'docker'],
    ] as const;
    for (const [text, driver, kind] of cases) {
      const store = parseStoreSpec(text);
      expect(store).toBeInstanceOf(driver);
      expect([store.kind, store.root]).toEqual([kind, '/var/lib/cairn']);
    }
    expect([...cases.map(([, , kind]) => kind), 'zfs']).toEqual(STORE_KINDS);
  });

  it('name a ZFS pool or dataset for the zfs driver', () => {
    const store = parseStoreSpec('zfs:tank/builds');
    expect(store).toBeInstanceOf(ZfsStore);
    expect(store.kind).toBe('zfs');
  });

  it('are refused with the valid choices when they name no driver or no absolute path', () => {
    const choices = 'valid choices: btrfs:/path, overlayfs:/path, rsync:/path, rsync-hardlink:/path, xfs:/path, docker:/path, zfs:POOL[/DATASET]';
    for (const [text, why] of [
      ['zfs', 'zfs needs a pool or dataset, such as zfs:tank'],
      ['lvm:/tank', 'unknown kind "lvm"'],
      ['/var/lib/cairn', 'unknown kind "/var/lib/cairn"'],
      ['constructor:/x', 'unknown kind "constructor"'],
      ['btrfs', 'btrfs needs the absolute path of the store'],
      ['rsync:relative/dir', 'rsync needs the absolute path of the store'],
    ]) {
      expect(() => parseStoreSpec(text!)).toThrow(StoreSpecError);
      expect(() => parseStoreSpec(text!)).toThrow(`invalid store ${JSON.stringify(text)}: ${why}; ${choices}`);
    }
  });
});
