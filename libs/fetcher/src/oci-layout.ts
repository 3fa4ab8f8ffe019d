import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REF_NAME, type Descriptor } from '@cairn/oci-image';
import { digestHex, readDocument, readVerified } from './digest.js';
import { FetchError, ImageNotFoundError } from './fetcher.js';
import { imageName, parseImageRef, taggedName, type ImageRef } from './image-ref.js';
import type { ImageSource } from './image-unpacker.js';
import { parseManifestDocument, type ImageIndex } from './oci-documents.js';
import { listTarFile } from './tar-entries.js';

/**
 * An OCI image layout, read from its directory or from a tarball of it (`oci-archive`,
 * uncompressed). A tarball is indexed header by header and its blobs are read in place,
 * never unpacked.
 */
export interface OciLayout extends ImageSource {
  readonly index: ImageIndex;
  /** The index.json entry (or, for `name@digest`, the index child) that `text` names. */
  resolve(text: string): Promise<Descriptor>;
}

type Files = (name: string) => AsyncIterable<Uint8Array> | undefined;

export async function openOciLayout(path: string): Promise<OciLayout> {
  const where = `OCI layout ${path}`;
  let files: Files;
  try {
    files = (await stat(path)).isDirectory() ? directoryFiles(path) : await tarballFiles(path);
  } catch (e) {
    if (e instanceof FetchError) throw e;
    throw new FetchError(`cannot read ${where}: ${(e as Error).message}`);
  }
  const read = async (name: string) => {
    const content = files(name);
    if (!content) throw new FetchError(`${where} has no ${name}`);
    return readDocument(content, `${name} of ${where}`);
  };
  await read('oci-layout');
  const index = parseManifestDocument(await read('index.json'), `index.json of ${where}`);
  if (index.kind !== 'index') throw new FetchError(`index.json of ${where} is not an image index`);

  const blob = (descriptor: Pick<Descriptor, 'digest'>): AsyncIterable<Uint8Array> => {
    const content = files(`blobs/sha256/${digestHex(descriptor.digest)}`);
    if (!content) throw new FetchError(`${where} lacks blob ${descriptor.digest}`);
    return content;
  };
  const layout: OciLayout = {
    where,
    index,
    blob,
    manifest: (digest) => readDocument(blob({ digest }), `manifest ${digest}`),
    resolve: (text) => resolveRef(layout, parseImageRef(text), text),
  };
  return layout;
}

function directoryFiles(dir: string): Files {
  return (name) => {
    const file = join(dir, name);
    return (async function* () {
      try {
        yield* createReadStream(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new FetchError(`OCI layout ${dir} has no ${name}`);
        throw e;
      }
    })();
  };
}

async function tarballFiles(tarball: string): Promise<Files> {
  const members = new Map<string, { offset: number; size: number }>();
  for (const entry of await listTarFile(tarball)) {
    const name = entry.path
      .split('/')
      .filter((c) => c !== '' && c !== '.')
      .join('/');
    if (entry.type === 'file') members.set(name, entry);
  }
  return (name) => {
    const member = members.get(name);
    if (!member) return undefined;
    if (member.size === 0) return (async function* () {})();
    return createReadStream(tarball, { start: member.offset, end: member.offset + member.size - 1 });
  };
}

const refNameOf = (d: Descriptor) => d.annotations?.[REF_NAME];

/** The annotation as a reference, or undefined for names that are not (skopeo's bare tags). */
function annotatedRef(d: Descriptor): ImageRef | undefined {
  const name = refNameOf(d);
  if (name === undefined) return undefined;
  try {
    return parseImageRef(name);
  } catch {
    return undefined;
  }
}

async function resolveRef(layout: OciLayout, want: ImageRef, text: string): Promise<Descriptor> {
  const sameName = layout.index.manifests.filter((d) => {
    const ref = annotatedRef(d);
    if (!ref) return false;
    if (want.digest === undefined) return taggedName(ref) === taggedName(want);
    return imageName(ref) === imageName(want) && (want.tag === undefined || ref.tag === want.tag);
  });
  const { digest } = want;
  if (digest === undefined) {
    if (sameName[0]) return sameName[0];
  } else {
    const direct = sameName.find((d) => d.digest === digest);
    if (direct) return direct;
    for (const d of sameName) {
      const doc = parseManifestDocument(await readVerified(layout.blob(d), d.digest, 'index'), `index ${d.digest}`);
      const child = doc.kind === 'index' ? doc.manifests.find((m) => m.digest === digest) : undefined;
      if (child) return child;
    }
  }
  const names = layout.index.manifests.flatMap((d) => refNameOf(d) ?? []);
  throw new ImageNotFoundError(`no image ${text} in ${layout.where}; it has: ${names.join(', ') || 'no named images'}`);
}
