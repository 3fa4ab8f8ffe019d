import { Readable } from 'node:stream';
import { readDocument } from './digest.js';
import { FetchError } from './fetcher.js';

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

interface BearerChallenge {
  readonly realm: string;
  readonly service?: string;
  readonly scope?: string;
}

/** `Bearer realm="...",service="...",scope="..."`, or undefined for any other scheme. */
function parseBearerChallenge(header: string | null): BearerChallenge | undefined {
  const match = header?.match(/^\s*Bearer\s+(.*)$/i);
  if (!match?.[1]) return undefined;
  const params = new Map([...match[1].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]?.toLowerCase(), m[2]]));
  const realm = params.get('realm');
  if (!realm) return undefined;
  return { realm, service: params.get('service'), scope: params.get('scope') };
}

/**
 * GETs from one registry's distribution API, with its token flow: a 401 that carries a
 * Bearer challenge is answered by asking the challenge's realm for a token (with basic
 * credentials when configured) and retrying once with it. Tokens are kept per repository
 * for the client's lifetime, which is one fetch.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, string>();

  constructor(
    readonly base: string,
    private readonly credentials?: RegistryCredentials,
  ) {}

  /** `GET /v2/REPOSITORY/PATH`; the response may still be an error for the caller to word. */
  async get(repository: string, path: string, accept?: string): Promise<Response> {
    const url = `${this.base}/v2/${repository}/${path}`;
    const first = await this.send(url, accept, this.tokens.get(repository));
    if (first.status !== 401) return first;
    const challenge = parseBearerChallenge(first.headers.get('www-authenticate'));
    if (!challenge) return first;
    await first.body?.cancel();
    const token = await this.token(challenge);
    this.tokens.set(repository, token);
    return this.send(url, accept, token);
  }

  private async send(url: string, accept: string | undefined, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = {};
    if (accept) headers.accept = accept;
    if (token) headers.authorization = `Bearer ${token}`;
    try {
      return await fetch(url, { headers });
    } catch (e) {
      throw new FetchError(`cannot reach registry ${this.base}: ${describe(e)}`);
    }
  }

  private async token(challenge: BearerChallenge): Promise<string> {
    const url = new URL(challenge.realm);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new FetchError(`registry ${this.base} sent a token realm that is not http(s): ${challenge.realm}`);
    }
    if (challenge.service) url.searchParams.set('service', challenge.service);
    if (challenge.scope) url.searchParams.set('scope', challenge.scope);
    const headers: Record<string, string> = {};
    if (this.credentials) {
      const { username, password } = this.credentials;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    let response: Response;
    try {
      response = await fetch(url, { headers });
    } catch (e) {
      throw new FetchError(`cannot reach the token service ${url.origin}${url.pathname}: ${describe(e)}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new FetchError(`the token service ${url.origin}${url.pathname} refused a token (${response.status})`);
    }
    const text = (await readDocument(bodyOf(response), 'token response')).toString('utf8');
    let body: { token?: unknown; access_token?: unknown } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    const token = body?.token ?? body?.access_token;
    if (typeof token !== 'string') throw new FetchError(`the token service ${url.origin} answered without a token`);
    return token;
  }
}

/** A response body as the byte stream the rest of the fetchers read. */
export function bodyOf(response: Response): AsyncIterable<Uint8Array> {
  if (!response.body) return Readable.from([]);
  return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error).message;
}
