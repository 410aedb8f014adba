// Certificates for tests, made with openssl: self-signed server certificates for 127.0.0.1,
// and client certificates signed by their own CA.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** openssl req with a new P-256 key for CN=name: a certificate (-x509) or a request (-new). */
async function newKey(name: string, key: string, args: string[]): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await run('openssl', ['req', ...ec, '-subj', `/CN=${name}`, '-keyout', key, ...args]);
}

/** A self-signed certificate for 127.0.0.1, made with openssl. */
export async function makeCert(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await newKey(name, key, [
    '-x509',
    '-days',
    '1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-out',
    cert,
  ]);
  return { cert, key };
}

/** A CA, and a client certificate it signs (as an API server's webhook client certificate). */
export async function makeClientCert(
  dir: string,
  name: string,
): Promise<{ ca: string; caKey: string; cert: string; key: string }> {
  const ca = await makeCert(dir, `${name}-ca`);
  const signed = await signCert(dir, name, ca);
  return { ca: ca.cert, caKey: ca.key, ...signed };
}

/**
 * A certificate for CN=name signed by `ca`; with `extendedKeyUsage` (e.g. serverAuth) it is
 * good for that purpose only; with `subjectAltName` (e.g. IP:127.0.0.1) it names that host.
 */
export async function signCert(
  dir: string,
  name: string,
  ca: { cert: string; key: string },
  extendedKeyUsage?: string,
  subjectAltName?: string,
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  await newKey(name, key, ['-new', '-out', csr]);
  const ext = join(dir, `${name}.ext`);
  const extensions = [
    ...(extendedKeyUsage === undefined ? [] : [`extendedKeyUsage=${extendedKeyUsage}`]),
    ...(subjectAltName === undefined ? [] : [`subjectAltName=${subjectAltName}`]),
  ];
  if (extensions.length > 0) await writeFile(ext, `${extensions.join('\n')}\n`);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-days',
    '1',
    ...(extensions.length === 0 ? [] : ['-extfile', ext]),
    '-out',
    cert,
  ]);
  return { cert, key };
}
