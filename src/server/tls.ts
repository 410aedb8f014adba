// HTTPS with certificates that rotate under a running server: cert-manager (or a Secret
// update) replaces the files in place, and we swap them in on SIGHUP or when the files change.
// Kubernetes updates a mounted Secret by swapping a symlinked folder, so the folders are
// watched, not the files themselves.
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { createServer, type Server } from 'node:https';
import { dirname } from 'node:path';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { messageOf, PkmError } from '../errors.js';
import type { Logger } from '../log.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** --webhook-client-ca: ask for client certificates, verified against this CA. */
  readonly clientCaFile?: string | undefined;
}

interface Material {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

async function readMaterial(files: TlsFiles): Promise<Material> {
  try {
    const cert = await readFile(files.certFile);
    const key = await readFile(files.keyFile);
    if (files.clientCaFile === undefined) return { cert, key };
    return { cert, key, ca: await readFile(files.clientCaFile) };
  } catch (err) {
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot read --tls-cert, --tls-key or --webhook-client-ca: ${messageOf(err)}`,
    );
  }
}

/**
 * Reads the files and builds a TLS context from them: a missing file, bad PEM or a key that
 * does not match the certificate is INVALID_CONFIG, found before the server touches its store.
 */
export async function checkTlsFiles(files: TlsFiles): Promise<void> {
  const material = await readMaterial(files);
  try {
    createSecureContext(material);
  } catch (err) {
    throw new PkmError(
      'INVALID_CONFIG',
      `--tls-cert, --tls-key or --webhook-client-ca do not make a TLS context: ${messageOf(err)}`,
    );
  }
}

export interface ReloadingTlsServer {
  readonly server: Server;
  /** Stops watching (the server itself is closed by its owner). */
  stop(): void;
}

const SETTLE_MS = 200;

export async function createTlsServer(
  files: TlsFiles,
  app: RequestListener,
  log: Logger,
): Promise<ReloadingTlsServer> {
  let current = await readMaterial(files);
  // Client certificates are asked for but not required: only the webhook route insists.
  const options = (m: Material) =>
    m.ca === undefined ? m : { ...m, requestCert: true, rejectUnauthorized: false };
  const server = createServer(options(current), app);
  // A connection's client certificate is verified once, at its handshake: when the client CA
  // changes (a rotation, maybe because a certificate leaked), connections it let in are closed,
  // so that each caller is checked again against the new CA.
  const certified = new Set<TLSSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!socket.authorized) return;
    certified.add(socket);
    socket.once('close', () => certified.delete(socket));
  });
  const reload = async () => {
    try {
      const next = await readMaterial(files);
      if (
        next.cert.equals(current.cert) &&
        next.key.equals(current.key) &&
        (next.ca ?? Buffer.alloc(0)).equals(current.ca ?? Buffer.alloc(0))
      )
        return;
      server.setSecureContext(options(next));
      const caChanged = !(next.ca ?? Buffer.alloc(0)).equals(current.ca ?? Buffer.alloc(0));
      current = next;
      if (caChanged) for (const socket of certified) socket.destroy();
      log.info('TLS certificate reloaded');
      log.flush();
    } catch (err) {
      log.error({ err }, 'TLS reload failed; the old certificate stays');
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), SETTLE_MS);
  };
  const folders = new Set(
    [files.certFile, files.keyFile, files.clientCaFile].flatMap((f) =>
      f === undefined ? [] : [dirname(f)],
    ),
  );
  const watchers: FSWatcher[] = [];
  for (const folder of folders) {
    try {
      watchers.push(watch(folder, soon).on('error', () => undefined));
    } catch (err) {
      log.warn({ err, folder }, 'cannot watch the TLS folder: reload with SIGHUP');
    }
  }
  const onHup = () => void reload();
  process.on('SIGHUP', onHup);
  return {
    server,
    stop() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      process.off('SIGHUP', onHup);
    },
  };
}
