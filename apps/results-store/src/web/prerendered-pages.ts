/**
 * Finished build pages rendered once and kept in the data directory, with their gzip,
 * so that a page is not rendered (a few milliseconds of CPU) every time someone opens
 * an old build: dashboards are read far more often than builds are stored, and the
 * in-memory cache cannot hold a hundred thousand builds.
 *
 * A file is only a copy: it carries a stamp of everything its page was rendered from
 * that can change after the build is stored (its tags, the build before it, the
 * address in its commands, the renderer itself) and a checksum of its bytes. A reader
 * that finds the stamp different, the bytes damaged or the file missing renders the
 * page again, so a stale or tampered copy is never served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface PageBytes {
  readonly body: Buffer;
  readonly gzip: Buffer;
}

/** What a build page depends on besides the build's stored row, steps and artifacts. */
export interface PageFacts {
  readonly id: string;
  /** Told apart from a build deleted by retention and stored again under the same ID. */
  readonly storedAt: number;
  readonly tags: readonly string[];
  readonly previous: string | undefined;
  readonly baseUrl: string;
}

const MAGIC = 'cairn-page/1';

/** Where build `id`'s saved page lives under the data dir (also what retention removes). */
export function savedPagePath(dataDir: string, id: string): string {
  // The IDs' last characters are random: an even spread over 1,296 directories.
  return join(dataDir, 'pages', id.slice(-2), `${id}.page`);
}
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

export class PrerenderedPages {
  private readonly dir: string;

  /**
   * `renderer` identifies the page templates (a hash of a sample page): a new release
   * that renders pages differently does not serve the old release's copies.
   */
  constructor(dataDir: string, private readonly renderer: string) {
    this.dir = join(dataDir, 'pages');
  }

  stamp(facts: PageFacts): string {
    return sha256(JSON.stringify([this.renderer, facts.id, facts.storedAt, facts.tags, facts.previous ?? null, facts.baseUrl]));
  }

  path(id: string): string {
    return savedPagePath(join(this.dir, '..'), id);
  }

  /**
   * The intact copy kept for build `id` and the stamp it was rendered under, or
   * undefined when there is none (missing, damaged or tampered with).
   */
  async load(id: string): Promise<(PageBytes & { stamp: string }) | undefined> {
    let file: Buffer;
    try {
      file = await readFile(this.path(id));
    } catch {
      return undefined;
    }
    const eol = file.indexOf(10);
    if (eol < 0 || eol > 512) return undefined;
    const [magic, stamp, bodyLength, gzipLength, checksum] = file.subarray(0, eol).toString('latin1').split(' ');
    if (magic !== MAGIC || !stamp) return undefined;
    const bodyEnd = eol + 1 + Number(bodyLength);
    if (!Number.isSafeInteger(bodyEnd) || bodyEnd + Number(gzipLength) !== file.length) return undefined;
    if (sha256(file.subarray(eol + 1)) !== checksum) return undefined;
    return { stamp, body: file.subarray(eol + 1, bodyEnd), gzip: file.subarray(bodyEnd) };
  }

  /** The copy of the page for `facts`, or undefined when there is none that is intact and current. */
  async read(facts: PageFacts): Promise<PageBytes | undefined> {
    const kept = await this.load(facts.id);
    return kept && kept.stamp === this.stamp(facts) ? kept : undefined;
  }

  /** Keeps the page for `facts`; a reader sees the old copy or the new one, never half of one. */
  async write(facts: PageFacts, html: string): Promise<PageBytes> {
    const body = Buffer.from(html, 'utf8');
    // Level 1, as for every page sent: the first reader of a build not rendered when it was stored pays for it.
    const gzip = gzipSync(body, { level: 1 });
    const payload = Buffer.concat([body, gzip]);
    const header = `${MAGIC} ${this.stamp(facts)} ${body.length} ${gzip.length} ${sha256(payload)}\n`;
    const path = this.path(facts.id);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await mkdir(join(path, '..'), { recursive: true });
    try {
      // No fsync: a copy lost in a crash is only rendered again.
      await writeFile(tmp, Buffer.concat([Buffer.from(header, 'latin1'), payload]));
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return { body, gzip };
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }
}
