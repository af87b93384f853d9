/**
 * The store URL of the contract (`--store`, SLUICE_STORE) to a Store:
 * `etcd://HOST:PORT[,HOST:PORT…]` for a cluster, `file:PATH` for the embedded
 * single-host store. Opening connects lazily: nothing is read until the first call.
 */
import { BadRequestError } from '../errors';
import { EtcdStore } from './etcd-store';
import { DEFAULT_STATE_PATH, FileStore } from './file-store';
import type { Store } from './store';

export const DEFAULT_STORE_URL = `file:${DEFAULT_STATE_PATH}`;

const ACCEPTED = `etcd://HOST:PORT[,HOST:PORT…] for an etcd cluster, or file:PATH for one host (default ${DEFAULT_STORE_URL})`;

/** HOST:PORT with a name, an IPv4 address or a bracketed IPv6 address. */
const ENDPOINT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

export function openStore(url: string): Store {
  if (url.startsWith('etcd://')) {
    return new EtcdStore({ endpoints: parseEndpoints(url) });
  }
  if (url.startsWith('file:')) {
    return new FileStore(parseFilePath(url));
  }
  throw new BadRequestError(`store URL "${url}" is not one Sluice knows: use ${ACCEPTED}`);
}

function parseEndpoints(url: string): string[] {
  const list = url.slice('etcd://'.length).replace(/\/$/, '');
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
  return url.startsWith('etcd://') ? parseEndpoints(url) : [];
}
