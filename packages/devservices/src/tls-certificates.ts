import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DevServiceError, DevServiceErrorCode } from './errors';

const run = promisify(execFile);

/** PEM files made by `createTestCertificates`. */
export interface TestCertificates {
  /** The self-signed CA; clients trust it (`NODE_EXTRA_CA_CERTS`, ioredis `tls.ca`). */
  caFile: string;
  /** A server certificate signed by the CA, for `127.0.0.1`, `::1` and `localhost`. */
  certFile: string;
  keyFile: string;
}

/**
 * Makes a throwaway CA and a server certificate signed by it in `dir`, with the `openssl` command (valid for
 * two days, 2048-bit RSA). For local TLS endpoints in tests and demos only.
 */
export async function createTestCertificates(dir: string, options: { openssl?: string } = {}): Promise<TestCertificates> {
  const openssl = options.openssl ?? 'openssl';
  const file = (name: string) => join(dir, name);
  const openSsl = async (args: string[]) => {
    try {
      await run(openssl, args, { cwd: dir });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      throw new DevServiceError(
        DevServiceErrorCode.StartFailed,
        e.code === 'ENOENT' ? `openssl not found (tried ${JSON.stringify(openssl)}): install it to make test certificates` : `openssl ${args[0]} failed: ${e.stderr?.trim() ?? e.message}`,
        { cause: err },
      );
    }
  };
  await writeFile(file('server.ext'), 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  await openSsl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=layertap test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  await openSsl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  await openSsl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt']);
  return { caFile: file('ca.crt'), certFile: file('server.crt'), keyFile: file('server.key') };
}
