import { Readable } from 'node:stream';

/** One member of a hand-made layer: what GNU tar would refuse to write for us. */
export interface Member {
  readonly path: string;
  readonly type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'fifo';
  readonly content?: string;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly linkPath?: string;
  readonly device?: readonly [number, number];
}

const FLAGS = { file: '0', hardlink: '1', symlink: '2', char: '3', dir: '5', fifo: '6' } as const;

function field(block: Buffer, offset: number, length: number, value: string): void {
  if (Buffer.byteLength(value) > length) throw new Error(`tar field too long: ${value}`);
  block.write(value, offset, length, 'utf8');
}

const octal = (n: number, width: number) => `${n.toString(8).padStart(width - 1, '0')}\0`;

function header(m: Member, size: number): Buffer {
  const type = m.type ?? 'file';
  const block = Buffer.alloc(512);
  field(block, 0, 100, m.path);
  field(block, 100, 8, octal(m.mode ?? (type === 'dir' ? 0o755 : 0o644), 8));
  field(block, 108, 8, octal(m.uid ?? 0, 8));
  field(block, 116, 8, octal(m.gid ?? 0, 8));
  field(block, 124, 12, octal(size, 12));
  field(block, 136, 12, octal(1_700_000_000, 12));
  field(block, 148, 8, '        ');
  field(block, 156, 1, FLAGS[type]);
  field(block, 157, 100, m.linkPath ?? '');
  field(block, 257, 8, 'ustar\u000000');
  field(block, 329, 8, octal(m.device?.[0] ?? 0, 8));
  field(block, 337, 8, octal(m.device?.[1] ?? 0, 8));
  const sum = block.reduce((a, b) => a + b, 0);
  field(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** An uncompressed tar of `members`, in order, ustar format. */
export function tarball(members: readonly Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.content ?? '');
    parts.push(header(m, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A byte stream, as fetchers hand layers to applyLayer. */
export const streamOf = (bytes: Buffer) => Readable.from([bytes]);
