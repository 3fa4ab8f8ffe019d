import { RejectedError } from '@cairn/contracts';
import type { Spec } from '@cairn/spec';

/** Finds the digest an image reference names now (a Fetcher's `resolve`). */
export type ImageResolver = (image: string) => Promise<string>;

export interface PinnedImage {
  /** Child build path (`tools`, `tools/inner`), or `` for the main spec, as planSpec names stages. */
  readonly stage: string;
  readonly image: string;
  readonly pinned: string;
}

const PINNED = /@sha256:[0-9a-f]{64}$/;

/**
 * The spec with every `(from IMAGE)`, in the main spec and in every child build, pinned
 * to `IMAGE@sha256:...`, so that every worker that runs the job starts from the same
 * bytes whatever a tag points at by then. A reference already pinned keeps its text, but
 * must still be found: a job whose base image no worker can fetch is refused now rather
 * than failed later. Each distinct image is resolved once per spec.
 */
export async function pinImages(spec: Spec, resolve: ImageResolver): Promise<{ spec: Spec; images: PinnedImage[] }> {
  const lookups = new Map<string, Promise<string>>();
  const images: PinnedImage[] = [];

  const pinOne = async (image: string, stage: string): Promise<string> => {
    let lookup = lookups.get(image);
    if (!lookup) {
      lookup = resolve(image);
      lookups.set(image, lookup);
    }
    let digest: string;
    try {
      digest = await lookup;
    } catch (e) {
      const where = stage === '' ? 'the main spec' : `build "${stage}"`;
      throw new RejectedError('not-found', `cannot resolve base image ${image} of ${where}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const pinned = PINNED.test(image) ? image : `${image}@${digest}`;
    images.push({ stage, image, pinned });
    return pinned;
  };

  // Children before their parent, as planSpec walks them, so `images` reads in plan order.
  const pinStage = async (s: Spec, stage: string): Promise<Spec> => {
    const childBuilds = [];
    for (const child of s.childBuilds) {
      childBuilds.push({ name: child.name, spec: await pinStage(child.spec, stage ? `${stage}/${child.name}` : child.name) });
    }
    return { childBuilds, from: await pinOne(s.from, stage), ops: s.ops };
  };

  return { spec: await pinStage(spec, ''), images };
}
