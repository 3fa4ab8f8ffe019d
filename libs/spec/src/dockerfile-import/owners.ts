/** Users: USER and --chown as numeric ids, or as names found in the base image's /etc/passwd and /etc/group when the caller read them. */
import type { User } from '../ast.js';
import type { Position } from '../sexp.js';
import { SpecError } from '../spec-error.js';

function numericId(text: string | undefined): number | undefined {
  if (text === 'root') return 0;
  if (text === undefined || !/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 0xffffffff ? n : undefined;
}

/** The accounts of a base image, from its /etc/passwd and /etc/group. */
export interface Accounts {
  /** name → [uid, primary gid] */
  readonly users: ReadonlyMap<string, readonly [number, number]>;
  /** uid → primary gid, the first line of that uid */
  readonly primaryGroups: ReadonlyMap<number, number>;
  /** name → gid */
  readonly groups: ReadonlyMap<string, number>;
}

/** `name:x:uid:gid:...` and `name:x:gid:members` lines; malformed lines are skipped, as libc skips them. */
export function accountsOf(passwd: string, group: string): Accounts {
  const users = new Map<string, readonly [number, number]>();
  const primaryGroups = new Map<number, number>();
  const groups = new Map<string, number>();
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    const u = numericId(uid);
    const g = numericId(gid);
    if (!name || u === undefined || g === undefined || users.has(name)) continue;
    users.set(name, [u, g]);
    if (!primaryGroups.has(u)) primaryGroups.set(u, g);
  }
  for (const line of group.split('\n')) {
    const [name, , gid] = line.split(':');
    const g = numericId(gid);
    if (name && g !== undefined && !groups.has(name)) groups.set(name, g);
  }
  return { users, primaryGroups, groups };
}

/** What wrote the owner; the base image's config User reads as USER does. */
type Owner = 'USER' | 'COPY --chown' | 'ADD --chown' | "the base image's User";

/**
 * `U:G`, each a number or, with the base image's accounts, a name. A lone numeric `U` means
 * `U:U` for --chown (BuildKit), but for USER the group is the uid's primary group in
 * /etc/passwd (Docker); a lone name is the user and its primary group for both.
 */
export function parseOwner(text: string, what: Owner, pos: Position, accounts?: Accounts): User {
  const fail = (why: string): never => {
    throw new SpecError(`${what} ${text}: ${why}; write numeric ids as UID:GID`, pos);
  };
  const parts = text.split(':');
  if (parts.length > 2) fail('a user is written USER or USER:GROUP');
  const [userPart, groupPart] = parts as [string, string | undefined];
  const named = numericId(userPart) === undefined ? accounts?.users.get(userPart) : undefined;
  const uid = numericId(userPart) ?? named?.[0];
  if (uid === undefined)
    fail(
      accounts === undefined
        ? "a user or group name needs the image's /etc/passwd, which the import cannot read"
        : `"${userPart}" is not in the base image's /etc/passwd (a RUN may add it, which the import cannot see)`,
    );
  const gid = groupPart === undefined ? lonePrimaryGroup(uid!, named, what, accounts, fail) : groupId(groupPart, accounts, fail);
  return { kind: 'unix', uid: uid!, gid };
}

function lonePrimaryGroup(
  uid: number,
  named: readonly [number, number] | undefined,
  what: Owner,
  accounts: Accounts | undefined,
  fail: (why: string) => never,
): number {
  if (named !== undefined) return named[1];
  if ((what !== 'USER' && what !== "the base image's User") || uid === 0) return uid;
  const primary = accounts?.primaryGroups.get(uid);
  if (primary !== undefined) return primary;
  return fail(
    accounts === undefined
      ? `Docker takes the group of uid ${uid} from the image's /etc/passwd, which the import cannot read`
      : `Docker takes the group of uid ${uid} from /etc/passwd, where the base image has no such uid (a RUN may add it, which the import cannot see)`,
  );
}

function groupId(text: string, accounts: Accounts | undefined, fail: (why: string) => never): number {
  const gid = numericId(text) ?? accounts?.groups.get(text);
  if (gid !== undefined) return gid;
  return fail(
    accounts === undefined
      ? "a user or group name needs the image's /etc/passwd, which the import cannot read"
      : `"${text}" is not in the base image's /etc/group (a RUN may add it, which the import cannot see)`,
  );
}

const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;

/** `U[:G]` that names a user or group (not only ids), as chown would read it. */
export function namesAccount(text: string): boolean {
  const parts = text.split(':');
  return parts.length <= 2 && parts.every((p) => numericId(p) !== undefined || ACCOUNT_NAME.test(p)) && parts.some((p) => numericId(p) === undefined);
}

export const sameUser = (a: User, b: User) =>
  a.kind === 'unix' ? b.kind === 'unix' && a.uid === b.uid && a.gid === b.gid : b.kind === 'windows' && a.name === b.name;
