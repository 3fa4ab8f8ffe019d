import { open, type FileHandle } from 'node:fs/promises';
import { FetchError } from './fetcher.js';

/**
 * A reader of tar headers only: it lists entries (ustar, GNU long names, pax) without
 * extracting anything, so that Cairn can plan whiteouts and check paths before GNU tar
 * writes a byte, and can find blobs inside an OCI layout tarball without unpacking it.
 *
 * Paths are kept as raw bytes decoded as latin1 (one char per byte): a name that is not
 * UTF-8 must still compare equal to the file GNU tar creates for it.
 */
export interface TarEntry {
  readonly path: string;
  readonly type: 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';
  readonly linkPath: string;
  readonly size: number;
  /** Where the entry's data starts in the (uncompressed) archive. */
  readonly offset: number;
}

/** Sequential access to an archive's bytes. */
export interface ByteReader {
  readonly position: number;
  /** Up to `n` bytes; fewer only at the end. */
  read(n: number): Promise<Buffer>;
  skip(n: number): Promise<void>;
}

const BLOCK = 512;

export function streamReader(source: AsyncIterable<Uint8Array>): ByteReader {
  const chunks = source[Symbol.asyncIterator]();
  let buffered = Buffer.alloc(0);
  let position = 0;
  let ended = false;
  const fill = async (n: number) => {
    while (buffered.length < n && !ended) {
      const next = await chunks.next();
      if (next.done) ended = true;
      else buffered = Buffer.concat([buffered, next.value]);
    }
  };
  return {
    get position() {
      return position;
    },
    async read(n) {
      await fill(n);
      const out = buffered.subarray(0, n);
      buffered = buffered.subarray(out.length);
      position += out.length;
      return out;
    },
    async skip(n) {
      for (let left = n; left > 0;) {
        await fill(1);
        if (buffered.length === 0) throw new FetchError('tar archive is truncated');
        const k = Math.min(left, buffered.length);
        buffered = buffered.subarray(k);
        left -= k;
        position += k;
      }
    },
  };
}

function fileReader(file: FileHandle): ByteReader {
  let position = 0;
  return {
    get position() {
      return position;
    },
    async read(n) {
      const { buffer, bytesRead } = await file.read({ buffer: Buffer.alloc(n), position });
      position += bytesRead;
      return buffer.subarray(0, bytesRead);
    },
    async skip(n) {
      position += n;
    },
  };
}

const cString = (b: Buffer) => {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('latin1');
};

/** Octal, or GNU's base-256 for values that do not fit (files over 8 GiB). */
function numeric(field: Buffer): number {
  if ((field[0] ?? 0) & 0x80) {
    let n = (field[0] ?? 0) & 0x7f;
    for (const byte of field.subarray(1)) n = n * 256 + byte;
    return n;
  }
  const text = cString(field).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  const stored = numeric(block.subarray(148, 156));
  return stored === unsigned || stored === signed;
}

/** pax records are `LENGTH key=value\n`, LENGTH counting bytes of the whole record. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  for (let at = 0; at < data.length;) {
    const space = data.indexOf(0x20, at);
    const length = parseInt(data.subarray(at, space).toString('latin1'), 10);
    if (space < 0 || !(length > 0)) throw new FetchError('tar archive has a malformed pax header');
    const record = data.subarray(space + 1, at + length - 1).toString('latin1');
    const eq = record.indexOf('=');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

const TYPES: Readonly<Record<string, TarEntry['type']>> = {
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  D: 'dir',
  '6': 'fifo',
};

const padded = (size: number) => Math.ceil(size / BLOCK) * BLOCK;

/** The entries of a tar archive, in archive order. */
export async function* tarEntries(reader: ByteReader): AsyncGenerator<TarEntry> {
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const block = await reader.read(BLOCK);
    if (block.length === 0 || block.every((b) => b === 0)) return;
    if (block.length < BLOCK) throw new FetchError('tar archive is truncated');
    if (!checksumOk(block)) {
      throw new FetchError(`not a tar archive, or a corrupt one (bad header at byte ${reader.position - BLOCK})`);
    }
    const flag = String.fromCharCode(block[156] ?? 0);
    const headerSize = numeric(block.subarray(124, 136));
    const readData = async () => (await reader.read(padded(headerSize))).subarray(0, headerSize);

    if (flag === 'x') pax = paxRecords(await readData());
    else if (flag === 'L') longName = cString(await readData());
    else if (flag === 'K') longLink = cString(await readData());
    else if (flag === 'g' || flag === 'V') await reader.skip(padded(headerSize));
    else {
      // Old GNU sparse files carry extra map blocks between header and data.
      for (let extended = flag === 'S' && block[482] !== 0; extended;) {
        extended = (await reader.read(BLOCK))[504] !== 0;
      }
      const posix = block.subarray(257, 263).toString('latin1') === 'ustar\0';
      const prefix = posix ? cString(block.subarray(345, 500)) : '';
      const name = cString(block.subarray(0, 100));
      const size = Number(pax.get('size') ?? headerSize);
      yield {
        path: pax.get('GNU.sparse.name') ?? pax.get('path') ?? longName ?? (prefix ? `${prefix}/${name}` : name),
        type: TYPES[flag] ?? 'file',
        linkPath: pax.get('linkpath') ?? longLink ?? cString(block.subarray(157, 257)),
        size,
        offset: reader.position,
      };
      await reader.skip(padded(size));
      pax = new Map();
      longName = undefined;
      longLink = undefined;
    }
  }
}

export async function collect(entries: AsyncIterable<TarEntry>): Promise<TarEntry[]> {
  const all: TarEntry[] = [];
  for await (const entry of entries) all.push(entry);
  return all;
}

/** The entries of an uncompressed tar file, read header by header without the data. */
export async function listTarFile(file: string): Promise<TarEntry[]> {
  const handle = await open(file, 'r');
  try {
    return await collect(tarEntries(fileReader(handle)));
  } finally {
    await handle.close();
  }
}
