import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { blobPath, imageBlobs, type OciImage } from './oci-layout.js';
import { OciImageError } from './oci-image-error.js';
import { parseRegistryRef, type RegistryRef } from './registry-ref.js';
import { MediaType, type Descriptor } from './vocabulary.js';

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface PushOptions {
  readonly credentials?: RegistryCredentials;
  /** Use http:// even for a registry that is not on loopback. */
  readonly plainHttp?: boolean;
  /** Told of each blob: `pushed` or `exists` (found by HEAD and skipped). */
  readonly onBlob?: (digest: string, outcome: 'pushed' | 'exists') => void;
}

export interface PushedImage {
  /** `host/repository:tag` */
  readonly ref: string;
  /** The image index's digest: `host/repository@DIGEST` pulls exactly this image. */
  readonly digest: string;
}

/**
 * Pushes an image to an OCI registry over the distribution API: every blob the registry
 * lacks (a HEAD tells), by a monolithic POST+PUT upload; then each platform's manifest by
 * digest; then the index by `ref`'s tag. A registry that asks for a token (Bearer) or for
 * basic auth is answered with `credentials`.
 */
export async function pushImage(image: OciImage, ref: string, options: PushOptions = {}): Promise<PushedImage> {
  const target = parseRegistryRef(ref, options);
  const client = new PushClient(target, options.credentials);
  for (const blob of imageBlobs(image)) {
    if (blob.mediaType === MediaType.index || blob.mediaType === MediaType.manifest) continue;
    const pushed = await client.pushBlob(image.layoutDir, blob);
    options.onBlob?.(blob.digest, pushed ? 'pushed' : 'exists');
  }
  for (const { manifest } of [...image.images, ...image.datasets]) await client.putManifest(image.layoutDir, manifest, manifest.digest);
  await client.putManifest(image.layoutDir, image.index, target.tag);
  return { ref: `${target.host}/${target.repository}:${target.tag}`, digest: image.index.digest };
}

/** The part of the distribution API a push needs, with its authentication. */
class PushClient {
  private authorization: string | undefined;

  constructor(
    private readonly target: RegistryRef,
    private readonly credentials: RegistryCredentials | undefined,
  ) {}

  /** Uploads `blob` unless the registry has it; true if it was uploaded. */
  async pushBlob(layoutDir: string, blob: Descriptor): Promise<boolean> {
    const head = await this.send('HEAD', `blobs/${blob.digest}`);
    if (head.ok) return false;
    if (head.status !== 404) throw await this.refused(head, `HEAD of blob ${blob.digest}`);
    const start = await this.send('POST', 'blobs/uploads/');
    if (start.status !== 202) throw await this.refused(start, `the start of an upload of ${blob.digest}`);
    await start.body?.cancel();
    const location = start.headers.get('location');
    if (!location) throw new OciImageError(`registry ${this.target.base} started an upload without a Location`);
    const url = new URL(location, `${this.target.base}/`);
    url.searchParams.set('digest', blob.digest);
    const body = () => Readable.toWeb(createReadStream(blobPath(layoutDir, blob.digest))) as ReadableStream<Uint8Array>;
    const put = await this.send('PUT', url, {
      body,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    });
    if (put.status !== 201) throw await this.refused(put, `the upload of blob ${blob.digest}`);
    await put.body?.cancel();
    return true;
  }

  async putManifest(layoutDir: string, manifest: Descriptor, reference: string): Promise<void> {
    const bytes = await readFile(blobPath(layoutDir, manifest.digest));
    const put = await this.send('PUT', `manifests/${reference}`, { body: () => bytes, headers: { 'content-type': manifest.mediaType } });
    if (put.status !== 201) throw await this.refused(put, `the manifest ${manifest.digest} as ${reference}`);
    await put.body?.cancel();
    const stored = put.headers.get('docker-content-digest');
    if (stored && stored !== manifest.digest) {
      throw new OciImageError(`registry ${this.target.base} stored manifest ${reference} as ${stored}, not ${manifest.digest}`);
    }
  }

  /** One request, answered once more with credentials if the registry asks for them. */
  private async send(
    method: string,
    path: string | URL,
    request: { body?: () => Buffer | ReadableStream<Uint8Array>; headers?: Record<string, string> } = {},
  ): Promise<Response> {
    const url = typeof path === 'string' ? `${this.target.base}/v2/${this.target.repository}/${path}` : path;
    const attempt = async () => {
      const headers = { ...request.headers, ...(this.authorization ? { authorization: this.authorization } : {}) };
      const body = request.body?.();
      try {
        return await fetch(url, { method, headers, body, ...(body instanceof ReadableStream ? { duplex: 'half' } : {}) } as RequestInit);
      } catch (e) {
        throw new OciImageError(`cannot reach registry ${this.target.base}: ${describe(e)}`);
      }
    };
    const first = await attempt();
    // A token covers the scope it was asked for; a request that needs another scope
    // (a registry may ask for pull on HEAD and push on POST) is challenged again.
    if (first.status !== 401) return first;
    await first.body?.cancel();
    this.authorization = await this.authorize(first.headers.get('www-authenticate') ?? '');
    return attempt();
  }

  private async authorize(challenge: string): Promise<string> {
    const where = `registry ${this.target.base}`;
    const basic = this.credentials && `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString('base64')}`;
    if (/^\s*Basic\b/i.test(challenge)) {
      if (!basic) throw new OciImageError(`${where} wants a user name and password to push`);
      return basic;
    }
    const params = new Map([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]?.toLowerCase(), m[2] ?? '']));
    const realm = /^\s*Bearer\b/i.test(challenge) ? params.get('realm') : undefined;
    if (!realm) throw new OciImageError(`${where} refused access (401) without a usable challenge`);
    const url = new URL(realm);
    if (params.get('service')) url.searchParams.set('service', params.get('service') ?? '');
    url.searchParams.set('scope', params.get('scope') ?? `repository:${this.target.repository}:pull,push`);
    let response: Response;
    try {
      response = await fetch(url, { headers: basic ? { authorization: basic } : {} });
    } catch (e) {
      throw new OciImageError(`cannot reach the token service ${url.origin}${url.pathname}: ${describe(e)}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new OciImageError(`the token service ${url.origin}${url.pathname} refused a push token (${response.status})`);
    }
    const body = (await response.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
    const token = body.token ?? body.access_token;
    if (typeof token !== 'string') throw new OciImageError(`the token service ${url.origin} answered without a token`);
    return `Bearer ${token}`;
  }

  /** The registry's own words for a refusal (its `errors` list), with what was refused. */
  private async refused(response: Response, what: string): Promise<OciImageError> {
    const text = await response.text().catch(() => '');
    let detail = text.trim().slice(0, 300);
    try {
      const errors = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
      if (errors.length > 0) detail = errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    } catch {
      // not JSON: keep the text
    }
    const name = `${this.target.host}/${this.target.repository}`;
    return new OciImageError(`registry ${this.target.base} refused ${what} for ${name} (${response.status})${detail ? `: ${detail}` : ''}`);
  }
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}
