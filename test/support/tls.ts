/**
 * Certificates for the tests of TLS: a CA of the test's own, made with openssl in a
 * directory of the test's, and the certificates it signs.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface TestCa {
  /** The CA's certificate, `DIR/ca.pem` (its key beside it, `ca.key`). */
  readonly cert: string;
  /**
   * A new key and its certificate for common name `cn`, signed by the CA with the
   * openssl extensions `ext` (`subjectAltName=DNS:localhost`): `DIR/NAME.key`, `DIR/NAME.pem`.
   */
  sign(name: string, cn: string, ext: string): Promise<{ key: string; cert: string }>;
}

/** A CA valid for a day, in `dir`. */
export function makeTestCa(dir: string): TestCa {
  const at = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=cairn test CA', '-keyout', at('ca.key'), '-out', at('ca.pem'));
  return {
    cert: at('ca.pem'),
    async sign(name, cn, ext) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', at(`${name}.key`), '-out', at(`${name}.csr`));
      await writeFile(at(`${name}.ext`), ext);
      openssl(
        'x509',
        '-req',
        '-in',
        at(`${name}.csr`),
        '-CA',
        at('ca.pem'),
        '-CAkey',
        at('ca.key'),
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        at(`${name}.ext`),
        '-out',
        at(`${name}.pem`),
      );
      return { key: at(`${name}.key`), cert: at(`${name}.pem`) };
    },
  };
}
