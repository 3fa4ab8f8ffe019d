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
import { constants } from 'node:fs';
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

// Read without updating the file's access time (Linux; 0 elsewhere). The first read of a
// just-written copy would otherwise dirty its inode, and on ext4 that can wait for the
// journal commit under way (~100 ms while files are being created, as during the
// backfill), holding one of libuv's four threads, which other requests need too.
const NOATIME = constants.O_NOATIME ?? 0;

async function readCopy(path: string): Promise<Buffer> {
  try {
    return await readFile(path, { flag: constants.O_RDONLY | NOATIME });
  } catch (e) {
    // O_NOATIME is refused on a file this process does not own (a data directory copied in by another user).
    if (NOATIME && (e as NodeJS.ErrnoException).code === 'EPERM') return readFile(path);
    throw e;
  }
}

export class PrerenderedPages {
  private readonly dir: string;

  /**
   * `renderer` identifies the page templates (a hash of a sample page): a new release
   * that renders pages differently does not serve the old release's copies.
   */
  constructor(
    dataDir: string,
    readonly renderer: string,
  ) {
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
      file = await readCopy(this.path(id));
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

  /** The bytes to send for a page: the markup and (level 1, as for every page sent) its gzip. */
  static encode(html: string): PageBytes {
    const body = Buffer.from(html, 'utf8');
    return { body, gzip: gzipSync(body, { level: 1 }) };
  }

  /** Keeps the page for `facts`; a reader sees the old copy or the new one, never half of one. */
  async write(facts: PageFacts, html: string): Promise<PageBytes> {
    const page = PrerenderedPages.encode(html);
    await this.save(facts, page);
    return page;
  }

  /** Keeps already encoded page bytes for `facts` (see `write`). */
  async save(facts: PageFacts, page: PageBytes): Promise<void> {
    const payload = Buffer.concat([page.body, page.gzip]);
    const header = `${MAGIC} ${this.stamp(facts)} ${page.body.length} ${page.gzip.length} ${sha256(payload)}\n`;
    const file = Buffer.concat([Buffer.from(header, 'latin1'), payload]);
    const path = this.path(facts.id);
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      // No fsync: a copy lost in a crash is only rendered again.
      await writeFile(tmp, file).catch(async (e: NodeJS.ErrnoException) => {
        // The directory is made on the first page that lands in it, not checked on every write.
        if (e.code !== 'ENOENT') throw e;
        await mkdir(join(path, '..'), { recursive: true });
        await writeFile(tmp, file);
      });
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }
}
