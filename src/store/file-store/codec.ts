/**
 * The state file's format, "sluice-state/1": the engine's whole state (keys,
 * leases with their expiry times, the last revisions' events) as JSON, and
 * back, checking every field, since the file may be damaged or hand-edited.
 */
import { errorMessage } from '../../errors';
import type { WatchEvent } from '../store';
import { KvState, type HistoryEntry, type StoredKv, type StoredLease } from '../kv/state';

const FORMAT = 'sluice-state/1';

/** The file is not a state file this version can read. */
export class CorruptStateError extends Error {}

interface FileKv {
  key: string;
  value: string;
  modRevision: number;
  lease?: string;
}

interface FileLease {
  id: string;
  ttlSeconds: number;
  expiresAt: number;
}

type FileEvent = { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

interface StateFile {
  format: typeof FORMAT;
  storeId: string;
  revision: number;
  compactRevision: number;
  kvs: FileKv[];
  leases: FileLease[];
  /** Events of the last revisions, so other processes' watches see each change. */
  history: { revision: number; events: FileEvent[] }[];
}

/** `now`: from when a lease held in memory (no expiry yet) counts its TTL. */
export function encodeState(state: KvState, now: number): string {
  const file: StateFile = {
    format: FORMAT,
    storeId: state.storeId,
    revision: state.revision,
    compactRevision: state.compactRevision,
    kvs: [...state.kvs].map(([key, kv]) => ({ key, ...kv })),
    leases: [...state.leases].map(([id, lease]) => ({
      id,
      ttlSeconds: lease.ttlSeconds,
      // A file store's leases always expire; null only exists in the memory store.
      expiresAt: lease.expiresAt ?? now + lease.ttlSeconds * 1000,
    })),
    history: state.history.map(({ revision, events }) => ({
      revision,
      events: events.map((e): FileEvent =>
        e.type === 'put' ? { type: 'put', key: e.kv.key, value: e.kv.value } : { type: 'delete', key: e.key },
      ),
    })),
  };
  return `${JSON.stringify(file, null, 1)}\n`;
}

export function decodeState(text: string, historyLimit: number): KvState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new CorruptStateError(errorMessage(err));
  }
  const file = record(data, 'the file');
  if (file['format'] !== FORMAT) throw new CorruptStateError(`format is not "${FORMAT}"`);
  const revision = count(file['revision'], 'revision');
  const kvs = new Map<string, StoredKv>();
  for (const item of array(file['kvs'], 'kvs')) {
    const kv = record(item, 'a key');
    const lease = kv['lease'];
    const stored: StoredKv = {
      value: text_(kv['value'], 'value'),
      modRevision: count(kv['modRevision'], 'modRevision'),
      ...(lease !== undefined && { lease: text_(lease, 'lease') }),
    };
    kvs.set(text_(kv['key'], 'key'), stored);
  }
  const leases = new Map<string, StoredLease>();
  for (const item of array(file['leases'], 'leases')) {
    const lease = record(item, 'a lease');
    leases.set(text_(lease['id'], 'lease id'), {
      ttlSeconds: count(lease['ttlSeconds'], 'ttlSeconds'),
      expiresAt: count(lease['expiresAt'], 'expiresAt'),
    });
  }
  const history: HistoryEntry[] = array(file['history'], 'history').map((item) => {
    const entry = record(item, 'a history entry');
    const at = count(entry['revision'], 'history revision');
    const events = array(entry['events'], 'events').map((e): WatchEvent => {
      const event = record(e, 'an event');
      const key = text_(event['key'], 'event key');
      if (event['type'] === 'delete') return { type: 'delete', key, modRevision: at };
      if (event['type'] === 'put') return { type: 'put', kv: { key, value: text_(event['value'], 'event value'), modRevision: at } };
      throw new CorruptStateError('an event is neither put nor delete');
    });
    return { revision: at, events };
  });
  const parts = {
    storeId: text_(file['storeId'], 'storeId'),
    revision,
    compactRevision: count(file['compactRevision'], 'compactRevision'),
    kvs,
    leases,
    history,
  };
  return new KvState(parts, historyLimit);
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CorruptStateError(`${what} is not an object`);
  }
  return value as Record<string, unknown>;
}

function array(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new CorruptStateError(`${what} is not a list`);
  return value as unknown[];
}

function text_(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new CorruptStateError(`${what} is not a string`);
  return value;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CorruptStateError(`${what} is not a whole number`);
  }
  return value;
}
