#!/usr/bin/env node
// Makes the base images the examples and the healthcheck use, into an OCI image layout:
//   cairn/busybox:latest     busybox-static with every applet linked
//   cairn/debian:bookworm    debootstrap --variant=minbase bookworm
// An image already in the layout is kept (debootstrap takes a while).
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REF_NAME, writeOciImage } from '../libs/oci-image/dist/index.js';

// An option is not a layout directory: `--help` would otherwise become one.
if (process.argv[2]?.startsWith('-')) {
  const help = ['--help', '-h'].includes(process.argv[2]);
  (help ? console.log : console.error)('usage: node tools/make-base-images.mjs [LAYOUT_DIR]  (default /var/lib/cairn/images)');
  process.exit(help ? 0 : 2);
}
const layout = process.argv[2] ?? '/var/lib/cairn/images';
const MIRROR = process.env.CAIRN_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const PATH_ENV = ['PATH', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

function has(ref) {
  const index = join(layout, 'index.json');
  if (!existsSync(index)) return false;
  const { manifests = [] } = JSON.parse(readFileSync(index, 'utf8'));
  return manifests.some((m) => m.annotations?.[REF_NAME] === ref);
}

function busyboxRootfs(dir) {
  for (const d of ['bin', 'etc', 'tmp', 'root', 'usr/bin', 'usr/local/bin']) mkdirSync(join(dir, d), { recursive: true });
  execFileSync('cp', ['/usr/bin/busybox', join(dir, 'bin/busybox')]);
  for (const applet of execFileSync('/usr/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
  }
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nuser:x:1000:\n');
  chmodSync(join(dir, 'tmp'), 0o1777);
}

async function make(ref, fill) {
  if (has(ref)) {
    console.log(`base images: ${ref} already in ${layout}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'cairn-base-'));
  try {
    const rootfs = join(dir, 'rootfs');
    mkdirSync(rootfs);
    console.log(`base images: making ${ref}`);
    fill(rootfs);
    await writeOciImage(layout, ref, [{ rootfs, config: { env: [PATH_ENV] } }]);
    console.log(`base images: wrote ${ref} to ${layout}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await make('cairn/busybox:latest', busyboxRootfs);
await make('cairn/debian:bookworm', (rootfs) =>
  execFileSync('debootstrap', ['--variant=minbase', 'bookworm', rootfs, MIRROR], { stdio: ['ignore', 'ignore', 'inherit'] }),
);
