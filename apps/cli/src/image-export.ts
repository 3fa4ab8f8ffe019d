/**
 * `cairn build --image REF`: the build's final snapshot as an OCI image (libs/oci-image),
 * run with the workdir, user and env the spec left it with, plus what a spec cannot say
 * (entrypoint, cmd, labels, ports, stop signal: from the flags, or from the file
 * `cairn import --image-config` wrote of a Dockerfile's metadata). Written to an OCI layout, pushed to a registry, or
 * loaded into a Docker daemon; the same inputs give the same image digest.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Builder } from '@cairn/builder';
import { checkImageConfig, type ImageConfig } from '@cairn/oci-image';
import type { Spec } from '@cairn/spec';
import { UsageError, UserError } from './cli-error.js';
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
  imageConfig?: string;
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
    .option(
      '--image <ref>',
      'make the final snapshot an OCI image named REF, run with the workdir, user and env the spec ends with; where it goes: --oci-layout, --push, --load',
    )
    .option('--oci-layout <dir>', 'write the image into the OCI layout DIR (created if needed) under the name REF')
    .option('--push', 'push the image to the registry REF names (HOST[:PORT]/NAME:TAG)')
    .option('--load', 'load the image into the Docker daemon as REF')
    .option('--docker-socket <path>', 'the Docker daemon for --load (default: DOCKER_HOST when unix://, else /var/run/docker.sock)')
    .option('--entrypoint <json>', 'the image\'s entrypoint, a JSON list: \'["/usr/bin/node", "main.js"]\'')
    .option('--cmd <json>', "the image's default arguments, a JSON list")
    .option('--label <key=value>', 'an image label (repeatable)', collect, [])
    .option('--expose <port>', 'a port the image serves, 8080 or 8080/tcp (repeatable)', collect, [])
    .option(
      '--image-config <file>',
      "entrypoint, cmd, labels, exposed ports and stop signal from FILE, the JSON `cairn import --image-config` writes of a Dockerfile's CMD, ENTRYPOINT, LABEL, EXPOSE and STOPSIGNAL; --entrypoint, --cmd and --expose replace the file's, --label overrides its label of that key, and --entrypoint without --cmd drops its cmd (as `docker run --entrypoint` does)",
    );
}

/** What an --image-config file may set: the image settings a Dockerfile's metadata gives. */
type FileConfig = Pick<ImageConfig, 'entrypoint' | 'cmd' | 'labels' | 'exposedPorts' | 'stopSignal'>;

const FILE_FIELDS: Readonly<Record<keyof FileConfig, (v: unknown) => boolean>> = {
  entrypoint: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  cmd: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  labels: (v) => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string'),
  exposedPorts: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  stopSignal: (v) => typeof v === 'string' && v !== '',
};
const FILE_TYPES: Readonly<Record<keyof FileConfig, string>> = {
  entrypoint: 'a list of strings',
  cmd: 'a list of strings',
  labels: 'an object of string values',
  exposedPorts: 'a list of strings',
  stopSignal: 'a signal name or number as a string',
};

/** The --image-config file, checked field by field: a UserError names the file and the field. */
function readImageConfigFile(path: string): FileConfig {
  const bad = (what: string) => new UserError(`--image-config ${path}: ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw bad((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('must be a JSON object, as `cairn import --image-config` writes');
  for (const [field, v] of Object.entries(value)) {
    if (!Object.hasOwn(FILE_FIELDS, field)) throw bad(`unknown field "${field}"; the fields are ${Object.keys(FILE_FIELDS).join(', ')}`);
    const key = field as keyof FileConfig;
    if (!FILE_FIELDS[key](v)) throw bad(`"${field}" must be ${FILE_TYPES[key]}, not ${JSON.stringify(v)}`);
  }
  const config = value as FileConfig;
  try {
    checkImageConfig(config, `--image-config ${path}`);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  return config;
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
    const stray =
      ociLayout !== undefined ||
      push ||
      load ||
      flags.entrypoint !== undefined ||
      flags.cmd !== undefined ||
      flags.label.length > 0 ||
      flags.expose.length > 0 ||
      flags.imageConfig !== undefined;
    if (stray) throw new UsageError('--oci-layout, --push, --load, --entrypoint, --cmd, --label, --expose and --image-config need --image REF');
    return;
  }
  if (ociLayout === undefined && !push && !load) throw new UsageError('--image: say where the image goes: --oci-layout DIR, --push and/or --load');
  jsonList(flags.entrypoint, '--entrypoint');
  jsonList(flags.cmd, '--cmd');
  for (const label of flags.label) if (!/^[^=]+=/.test(label)) throw new UsageError(`--label must be KEY=VALUE, not ${label}`);
  // Read before the build, so a bad file costs no build.
  if (flags.imageConfig !== undefined) readImageConfigFile(flags.imageConfig);
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
  const file = flags.imageConfig === undefined ? {} : readImageConfigFile(flags.imageConfig);
  const entrypoint = jsonList(flags.entrypoint, '--entrypoint') ?? file.entrypoint;
  // The file's cmd was written for the file's entrypoint.
  const cmd = jsonList(flags.cmd, '--cmd') ?? (flags.entrypoint === undefined ? file.cmd : undefined);
  const labels = { ...file.labels, ...Object.fromEntries(flags.label.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) };
  const exposedPorts = flags.expose.length > 0 ? flags.expose : file.exposedPorts;
  return {
    env: [...env],
    user: ctx.user.kind === 'unix' ? `${ctx.user.uid}:${ctx.user.gid}` : ctx.user.name,
    workdir: ctx.workdir,
    ...(entrypoint ? { entrypoint } : {}),
    ...(cmd ? { cmd } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
    ...(exposedPorts?.length ? { exposedPorts } : {}),
    ...(file.stopSignal === undefined ? {} : { stopSignal: file.stopSignal }),
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
