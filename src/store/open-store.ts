/**
 * The store URL of the contract (`--store`, SLUICE_STORE) to a Store:
 * `etcd://HOST:PORT[,HOST:PORT…]` for a cluster (`https://…` the same over TLS),
 * `file:PATH` for the embedded single-host store. Opening connects lazily:
 * nothing is read until the first call; certificate files are read here.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BadRequestError, errorMessage } from '../errors';
import { EtcdStore } from './etcd-store/adapter';
import type { EtcdTls } from './etcd-store/options';
import { DEFAULT_STATE_PATH, FileStore } from './file-store/adapter';
import type { Store } from './store';

export const DEFAULT_STORE_URL = `file:${DEFAULT_STATE_PATH}`;

const ACCEPTED = `etcd://HOST:PORT[,HOST:PORT…] (or https://… for TLS) for an etcd cluster, or file:PATH for one host (default ${DEFAULT_STORE_URL})`;

/** HOST:PORT with a name, an IPv4 address or a bracketed IPv6 address. */
const ENDPOINT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/** How to reach a secured etcd, as the flags give it: PEM file paths, and a login. */
export interface EtcdAccess {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  user?: string;
  password?: string;
}

const ETCD_SCHEMES = ['etcd://', 'https://'];

export function openStore(url: string, access: EtcdAccess = {}): Store {
  const scheme = ETCD_SCHEMES.find((prefix) => url.startsWith(prefix));
  if (scheme) {
    const tls = scheme === 'https://' || access.caFile !== undefined || access.certFile !== undefined;
    return new EtcdStore({
      endpoints: parseEndpoints(url, scheme),
      ...(tls && { tls: readTls(access) }),
      ...(access.user !== undefined && { auth: { username: access.user, password: access.password ?? '' } }),
    });
  }
  if (url.startsWith('file:')) {
    const etcdOnly = Object.keys(access).filter((key) => access[key as keyof EtcdAccess] !== undefined);
    if (etcdOnly.length > 0) {
      throw new BadRequestError(`store URL "${url}" is a state file: the etcd settings (${etcdOnly.join(', ')}) apply to an etcd store only`);
    }
    return new FileStore(parseFilePath(url));
  }
  throw new BadRequestError(`store URL "${url}" is not one Sluice knows: use ${ACCEPTED}`);
}

/** Reads and checks the PEM files now, so a wrong path or a key in place of a certificate is named at start. */
function readTls(access: EtcdAccess): EtcdTls {
  const pem = (flag: string, file: string, check: (pem: Buffer) => unknown): Buffer => {
    let contents: Buffer;
    try {
      contents = readFileSync(file);
    } catch (err) {
      throw new BadRequestError(`--${flag} ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    try {
      check(contents);
    } catch (err) {
      throw new BadRequestError(`--${flag} ${file}: not a PEM ${flag === 'etcd-key' ? 'private key' : 'certificate'}: ${errorMessage(err)}`);
    }
    return contents;
  };
  const certificate = (contents: Buffer): X509Certificate => new X509Certificate(contents);
  return {
    ...(access.caFile !== undefined && { ca: pem('etcd-ca', access.caFile, certificate) }),
    ...(access.certFile !== undefined && { cert: pem('etcd-cert', access.certFile, certificate) }),
    ...(access.keyFile !== undefined && { key: pem('etcd-key', access.keyFile, createPrivateKey) }),
  };
}

function parseEndpoints(url: string, scheme: string): string[] {
  const list = url.slice(scheme.length).replace(/\/$/, '');
  const endpoints = list.split(',').map((endpoint) => endpoint.trim());
  for (const endpoint of endpoints) {
    const port = Number(ENDPOINT.exec(endpoint)?.[2]);
    if (!(port >= 1 && port <= 65535)) {
      throw new BadRequestError(`store URL "${url}": "${endpoint}" is not HOST:PORT: use ${ACCEPTED}`);
    }
  }
  return endpoints;
}

/** `file:/abs/path`, `file:relative/path`, or the URL form `file:///abs/path`. */
function parseFilePath(url: string): string {
  let path = url.slice('file:'.length);
  if (path.startsWith('//')) {
    if (!path.startsWith('///')) {
      throw new BadRequestError(`store URL "${url}": a state file must be local (file:/PATH or file:///PATH)`);
    }
    path = path.slice(2);
  }
  if (path === '') throw new BadRequestError(`store URL "${url}" names no file: use ${ACCEPTED}`);
  return path;
}

/** The HOST:PORT endpoints of an etcd store URL (validated as openStore does); none for the file store. */
export function storeEndpoints(url: string): string[] {
  const scheme = ETCD_SCHEMES.find((prefix) => url.startsWith(prefix));
  return scheme ? parseEndpoints(url, scheme) : [];
}
