/** RUN --mount: its CSV options, and the cache and secret mounts a spec can express, owned as Docker would own them. */
import type { Mount, User } from '../ast.js';
import { trimEnd } from './characters.js';
import { parseBool } from './instructions.js';

/** Go's encoding/csv reading one record, as BuildKit reads a --mount value. */
export function csvFields(text: string, fail: (reason: string) => never): string[] {
  if (text === '') fail('is empty');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      for (i++; ; i++) {
        if (i >= text.length) fail('has a quoted field without its closing quote');
        if (text[i] === '"' && text[i + 1] === '"') field += text[i++];
        else if (text[i] === '"') break;
        else field += text[i];
      }
      i++;
      if (i < text.length && text[i] !== ',') fail('has text after a quoted field');
    } else {
      const end = text.indexOf(',', i);
      field = text.slice(i, end < 0 ? text.length : end);
      if (field.includes('"')) fail('has a bare " in a field');
      i += field.length;
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++;
  }
}

export const MOUNT_KEYS: Readonly<Record<string, string>> = {
  type: 'type',
  from: 'from',
  source: 'source',
  src: 'source',
  target: 'target',
  dst: 'target',
  destination: 'target',
  readonly: 'readonly',
  ro: 'readonly',
  readwrite: 'readwrite',
  rw: 'readwrite',
  id: 'id',
  sharing: 'sharing',
  required: 'required',
  mode: 'mode',
  uid: 'uid',
  gid: 'gid',
  size: 'size',
  env: 'env',
};

export type MountOptions = Map<string, string>;

const isAbsolute = (p: string) => p.startsWith('/');
const basename = (p: string) =>
  trimEnd(p, (c) => c === '/')
    .split('/')
    .at(-1) ?? '';

function rejectMountOptions(options: MountOptions, keys: readonly string[], type: string, fail: (reason: string) => never): void {
  for (const key of keys) if (options.has(key)) fail(`cannot be imported: "${key}" has no spec equivalent for a ${type} mount`);
}

/**
 * A spec mount is owned by the step's user, and `dockerfileOfSpec` writes that uid back;
 * Docker's is owned by `uid` (default 0). They must agree for the import to be faithful.
 */
function checkOwner(options: MountOptions, user: User, fail: (reason: string) => never): void {
  const uid = options.get('uid') ?? '0';
  if (!/^\d{1,10}$/.test(uid)) fail(`has uid "${uid}", which is not a number`);
  const stepUid = user.kind === 'unix' ? user.uid : -1;
  if (Number(uid) !== stepUid) {
    fail(`is owned by uid ${uid}, but a spec mount belongs to the step's user (uid ${stepUid}); add uid=${stepUid} to keep the same meaning`);
  }
}

/** Options a spec keeps for BuildKit as written (the exporter prints them back). */
function buildkitOptions(options: MountOptions, keys: readonly string[], fail: (reason: string) => never): [string, string][] {
  const out: [string, string][] = [];
  for (const [key, value] of options) {
    if (!keys.includes(key)) continue;
    if (key === 'gid' && !/^\d{1,10}$/.test(value)) fail(`has gid "${value}", which is not a number`);
    if (key === 'mode' && !/^[0-7]{1,11}$/.test(value)) fail(`has mode "${value}", which is not an octal number`);
    out.push([key, value]);
  }
  return out;
}

export function cacheMount(options: MountOptions, user: User, fail: (reason: string) => never): Mount {
  rejectMountOptions(options, ['from', 'source', 'size', 'required', 'env'], 'cache', fail);
  if (parseBool(options.get('readonly') ?? 'false') !== false) fail('cannot be imported: a spec cache is always writable');
  if (parseBool(options.get('readwrite') ?? 'true') !== true) fail('cannot be imported: a spec cache is always writable');
  const target = options.get('target');
  if (target === undefined || !isAbsolute(target)) fail('needs an absolute target=PATH');
  const sharing = options.get('sharing')?.toLowerCase();
  if (sharing !== undefined && !['shared', 'private', 'locked'].includes(sharing)) fail(`has sharing "${sharing}"; it must be shared, private or locked`);
  if (sharing !== undefined) options.set('sharing', sharing);
  checkOwner(options, user, fail);
  // BuildKit names a cache after its target when it has no id.
  return { id: options.get('id') || target!, target: target!, buildkitOptions: buildkitOptions(options, ['sharing', 'mode', 'gid'], fail) };
}

export function secretMount(options: MountOptions, user: User, fail: (reason: string) => never): Mount {
  rejectMountOptions(options, ['from', 'sharing', 'size', 'env', 'readwrite'], 'secret', fail);
  const required = options.get('required');
  if (required !== undefined) {
    const value = parseBool(required);
    if (value === undefined) fail(`has required "${required}", which is not true or false`);
    options.set('required', String(value));
  }
  if (options.has('id') && options.has('source')) fail('gives both id and source, which name the same thing');
  const written = options.get('target');
  const id = options.get('id') || options.get('source') || (written ? basename(written) : '');
  if (id === '') fail('needs id=ID or target=PATH');
  if (written !== undefined && !isAbsolute(written)) fail('needs an absolute target=PATH');
  checkOwner(options, user, fail);
  const target = written ?? `/run/secrets/${basename(id)}`;
  return { id, target, buildkitOptions: buildkitOptions(options, ['required', 'mode', 'gid'], fail) };
}
