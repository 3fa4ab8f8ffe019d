/**
 * `cairn build --image REF`: the build's final snapshot as an OCI image (libs/oci-image),
 * run with the workdir, user and env the spec left it with, plus what a spec cannot say
 * (entrypoint, cmd, labels, ports). Written to an OCI layout, pushed to a registry, or
 * loaded into a Docker daemon; the same inputs give the same image digest.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Builder } from '@cairn/builder';
import type { ImageConfig } from '@cairn/oci-image';
import type { Spec } from '@cairn/spec';
import { UsageError } from './cli-error.js';
import { collect } from './io.js';

export interface ImageFlags {
  image?: string;
  ociLayout?: string;
  push?: boolean;
  load?: boolean;
  dockerSocket?: string;
  entrypoint?: string;
  cmd?: string;
  label: string[];
  expose: string[];
}

/** What an export did, for the build's summary. */
export interface ExportedImage {
  readonly ref: string;
  /** The image index's digest: the image's, in a layout and in a registry. */
  readonly digest: string;
  /** Docker's image ID (the config digest of the host's platform). */
  readonly imageId: string;
  readonly ociLayout?: string;
  readonly pushed?: string;
  readonly loaded?: boolean;
}

export function addImageFlags(command: Command): Command {
  return command
    .option('--image <ref>', 'make the final snapshot an OCI image named REF, run with the workdir, user and env the spec ends with; where it goes: --oci-layout, --push, --load')
    .option('--oci-layout <dir>', 'write the image into the OCI layout DIR (created if needed) under the name REF')
    .option('--push', 'push the image to the registry REF names (HOST[:PORT]/NAME:TAG)')
    .option('--load', 'load the image into the Docker daemon as REF')
    .option('--docker-socket <path>', 'the Docker daemon for --load (default: DOCKER_HOST when unix://, else /var/run/docker.sock)')
    .option('--entrypoint <json>', 'the image\'s entrypoint, a JSON list: \'["/usr/bin/node", "main.js"]\'')
    .option('--cmd <json>', 'the image\'s default arguments, a JSON list')
    .option('--label <key=value>', 'an image label (repeatable)', collect, [])
    .option('--expose <port>', 'a port the image serves, 8080 or 8080/tcp (repeatable)', collect, []);
}

function jsonList(text: string | undefined, flag: string): string[] | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new UsageError(`${flag} must be a JSON list of strings, as in '["/bin/sh", "-c", "..."]', not ${text}`);
  }
  return value as string[];
}

/** Throws a usage error for flags that cannot work together, before anything is built. */
export function checkImageFlags(flags: ImageFlags): void {
  const { image, ociLayout, push, load } = flags;
  if (image === undefined) {
    const stray = ociLayout !== undefined || push || load || flags.entrypoint !== undefined || flags.cmd !== undefined || flags.label.length > 0 || flags.expose.length > 0;
    if (stray) throw new UsageError('--oci-layout, --push, --load, --entrypoint, --cmd, --label and --expose need --image REF');
    return;
  }
  if (ociLayout === undefined && !push && !load) throw new UsageError('--image: say where the image goes: --oci-layout DIR, --push and/or --load');
  jsonList(flags.entrypoint, '--entrypoint');
  jsonList(flags.cmd, '--cmd');
  for (const label of flags.label) if (!/^[^=]+=/.test(label)) throw new UsageError(`--label must be KEY=VALUE, not ${label}`);
}

/** `DOCKER_HOST=unix:///path` as a socket path; the default socket otherwise. */
function dockerSocket(flags: ImageFlags): string {
  if (flags.dockerSocket) return flags.dockerSocket;
  const host = process.env.DOCKER_HOST;
  return host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
}

/** The image config of `spec`'s result: env without shadowed bindings, in first-set order. */
async function imageConfig(builder: Builder, spec: Spec, flags: ImageFlags): Promise<ImageConfig> {
  const ctx = await builder.resultContext(spec);
  const env = new Map<string, string>();
  // ctx.env is newest first: walking it from the end keeps each name where it was first set.
  for (const [name, value] of [...ctx.env].reverse()) env.set(name, value);
  const entrypoint = jsonList(flags.entrypoint, '--entrypoint');
  const cmd = jsonList(flags.cmd, '--cmd');
  const labels = Object.fromEntries(flags.label.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return {
    env: [...env],
    user: ctx.user.kind === 'unix' ? `${ctx.user.uid}:${ctx.user.gid}` : ctx.user.name,
    workdir: ctx.workdir,
    ...(entrypoint ? { entrypoint } : {}),
    ...(cmd ? { cmd } : {}),
    ...(flags.label.length > 0 ? { labels } : {}),
    ...(flags.expose.length > 0 ? { exposedPorts: flags.expose } : {}),
  };
}

/** Exports result `id` of `spec` as the flags say; undefined without --image. */
export async function exportImage(builder: Builder, spec: Spec, id: string, flags: ImageFlags): Promise<ExportedImage | undefined> {
  const ref = flags.image;
  if (ref === undefined) return undefined;
  const { loadIntoDocker, pushImage, writeOciImage } = await import('@cairn/oci-image');
  const config = await imageConfig(builder, spec, flags);
  const layoutDir = flags.ociLayout ?? (await mkdtemp(join(tmpdir(), 'cairn-image-')));
  try {
    const image = await builder.store.withRootfs(id, (rootfs) => writeOciImage(layoutDir, ref, [{ rootfs, config }]));
    const pushed = flags.push ? (await pushImage(image, ref)).ref : undefined;
    const loaded = flags.load ? (await loadIntoDocker(image, ref, { socketPath: dockerSocket(flags) }), true) : undefined;
    return {
      ref,
      digest: image.index.digest,
      imageId: image.images[0]!.config.digest,
      ...(flags.ociLayout ? { ociLayout: flags.ociLayout } : {}),
      ...(pushed ? { pushed } : {}),
      ...(loaded ? { loaded } : {}),
    };
  } finally {
    if (flags.ociLayout === undefined) await rm(layoutDir, { recursive: true, force: true });
  }
}

/** One line per place the image went. */
export function describeExport(e: ExportedImage): string {
  const lines = [`image ${e.ref} ${e.digest}`];
  if (e.ociLayout) lines.push(`  written to the OCI layout ${e.ociLayout}`);
  if (e.pushed) lines.push(`  pushed as ${e.pushed}@${e.digest}`);
  if (e.loaded) lines.push(`  loaded into Docker as ${e.ref} (ID ${e.imageId})`);
  return `${lines.join('\n')}\n`;
}
