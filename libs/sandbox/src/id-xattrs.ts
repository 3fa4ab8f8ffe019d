import { UnsupportedConfigError } from './oci-config.js';

/**
 * The extended attributes the owner shift (user-namespace.ts) must carry itself:
 * `security.capability` (file capabilities, which any chown removes, even the host
 * root's) and POSIX ACLs, whose named users and groups are IDs like the owner's.
 */
const PATTERN = '^(security\\.capability|system\\.posix_acl_(access|default))$';

/** `getfattr`'s dump of those attributes of every entry under `dir`: `# file: PATH` then `name=0xHEX` lines. */
export async function readIdXattrs(dir: string): Promise<string> {
  const { execa } = await import('execa');
  const { stdout } = await execa('getfattr', [
    '--recursive',
    '--physical',
    '--no-dereference',
    '--absolute-names',
    '--dump',
    '--encoding=hex',
    `--match=${PATTERN}`,
    dir,
  ]);
  return stdout;
}

/** Writes a dump back, as `shiftIdXattrs` made it; a chown in between removed the capabilities. */
export async function restoreIdXattrs(dump: string): Promise<void> {
  if (dump.trim() === '') return;
  const { execa } = await import('execa');
  await execa('setfattr', ['--no-dereference', '--restore=-'], { input: `${dump}\n` });
}

/**
 * The dump with the IDs of ACL entries moved by `map`, and file capabilities written as
 * revision 2, which holds in every user namespace: a step's `setcap` writes revision 3,
 * naming its namespace's root (host uid 100000), which the host's IDs must not keep.
 * An ID `map` cannot place fails, naming the file, before anything changed.
 */
export function shiftIdXattrs(dump: string, map: (id: number) => number | 'outside'): string {
  let file = '';
  return dump
    .split('\n')
    .map((line) => {
      if (line.startsWith('# file: ')) file = line.slice('# file: '.length);
      const m = /^(security\.capability|system\.posix_acl_(?:access|default))=0x([0-9a-f]*)$/.exec(line);
      if (!m) return line;
      const value = Buffer.from(m[2]!, 'hex');
      const shifted = m[1] === 'security.capability' ? capabilityRevision2(value) : shiftAcl(value, map, `${file} (${m[1]})`);
      return `${m[1]}=0x${shifted.toString('hex')}`;
    })
    .join('\n');
}

// linux/capability.h: the revision is the top byte of magic_etc, the effective flag its lowest bit.
const VFS_CAP_REVISION_MASK = 0xff000000;
const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;
const XATTR_CAPS_SZ_2 = 20;

function capabilityRevision2(value: Buffer): Buffer {
  const magic = value.readUInt32LE(0);
  if ((magic & VFS_CAP_REVISION_MASK) >>> 0 !== VFS_CAP_REVISION_3) return value;
  const v2 = Buffer.from(value.subarray(0, XATTR_CAPS_SZ_2));
  v2.writeUInt32LE((VFS_CAP_REVISION_2 | (magic & 1)) >>> 0, 0);
  return v2;
}

// linux/posix_acl_xattr.h: a 4-byte version, then entries of tag (u16), perm (u16), id (u32).
const ACL_USER = 0x02;
const ACL_GROUP = 0x08;
const ACL_HEADER = 4;
const ACL_ENTRY = 8;

function shiftAcl(value: Buffer, map: (id: number) => number | 'outside', where: string): Buffer {
  const out = Buffer.from(value);
  for (let at = ACL_HEADER; at + ACL_ENTRY <= out.length; at += ACL_ENTRY) {
    const tag = out.readUInt16LE(at);
    if (tag !== ACL_USER && tag !== ACL_GROUP) continue;
    const id = out.readUInt32LE(at + 4);
    const moved = map(id);
    if (moved === 'outside') {
      throw new UnsupportedConfigError(
        `${where} names ${tag === ACL_USER ? 'user' : 'group'} ${id}, outside the IDs a step's user namespace maps (userns remap); run it with userns host`,
      );
    }
    out.writeUInt32LE(moved, at + 4);
  }
  return out;
}
