/**
 * Secrets on the bus are sealed for exactly one recipient: X25519 key agreement with
 * a fresh key per message, HKDF-SHA256, AES-256-GCM. The client seals for the scheduler,
 * the scheduler re-seals for the worker it assigns the job to; no stream or bucket ever
 * holds a secret in clear, and only that worker can open it.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import type { SealedBox } from './schemas.js';

const INFO = Buffer.from('cairn sealed box v1');

export interface KeyPair {
  readonly publicKey: string; // SPKI DER, base64
  readonly privateKey: KeyObject;
}

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return { publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'), privateKey };
}

export function exportPrivateKey(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

export function importKeyPair(pem: string): KeyPair {
  const privateKey = createPrivateKey(pem);
  return { publicKey: createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).toString('base64'), privateKey };
}

function keyFor(shared: Buffer, epk: string, recipient: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.from(epk + recipient), INFO, 32));
}

export function seal(recipientPublicKey: string, plaintext: Uint8Array): SealedBox {
  const recipient = createPublicKey({ key: Buffer.from(recipientPublicKey, 'base64'), format: 'der', type: 'spki' });
  const ephemeral = generateKeyPairSync('x25519');
  const epk = ephemeral.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const key = keyFor(diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient }), epk, recipientPublicKey);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { epk, iv: iv.toString('base64'), ct: ct.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

/** Throws when the box was not sealed for this key or was altered. */
export function open(keys: KeyPair, box: SealedBox): Buffer {
  const epk = createPublicKey({ key: Buffer.from(box.epk, 'base64'), format: 'der', type: 'spki' });
  const key = keyFor(diffieHellman({ privateKey: keys.privateKey, publicKey: epk }), box.epk, keys.publicKey);
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(box.iv, 'base64'));
  decipher.setAuthTag(Buffer.from(box.tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(box.ct, 'base64')), decipher.final()]);
}
