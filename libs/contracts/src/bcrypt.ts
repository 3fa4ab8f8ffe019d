/**
 * bcrypt password hashes (`$2a$COST$SALTHASH`), the form nats-server accepts in place of
 * a clear-text password (nats-auth.ts). bcryptjs is plain JavaScript, so the NATS config
 * needs no native module. Only hashing is needed here: nats-server does the checking.
 */
import { randomBytes } from 'node:crypto';
import { encodeBase64, hashSync } from 'bcryptjs';

/** `$2a$COST$...` for `password`; `salt` (16 bytes) is random unless given (tests). */
export function bcryptHash(password: string, cost = 11, salt: Uint8Array = randomBytes(16)): string {
  // Checked here so the error names the option an operator gave (nats-config --cost).
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new Error(`bcrypt: cost must be 4..31, not ${cost}`);
  if (salt.length !== 16) throw new Error('bcrypt: the salt is 16 bytes');
  // $2a$, not bcryptjs's own $2b$: the same hash for any password under 256 bytes, and
  // the form every config written so far holds.
  return hashSync(password, `$2a$${String(cost).padStart(2, '0')}$${encodeBase64(salt, 16)}`);
}
