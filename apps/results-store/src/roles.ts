/**
 * What a token lets its holder do; each role includes the ones before it. `reader` is the
 * dashboard's viewer; `writer` adds tags and uploads; `operator` adds the dashboard's
 * actions (cancel, retry, pause, drain) and the audit log; `admin` adds tokens and
 * clients' rates. Free of the server's modules: the browser's script reads it too.
 */
export const ROLES = ['reader', 'writer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** The signed-in token's role, for the page's script (login.controller.ts); never trusted by the server. */
export const ROLE_COOKIE = 'cairn_role';

export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
