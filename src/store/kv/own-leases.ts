/**
 * The leases one client of a key-value engine holds. The engine's state is
 * the truth: a lease it no longer has (expired, or revoked by another
 * client) is lost, and its holder told so once.
 */
import { HeldLease } from '../held-lease';
import type { KvState } from './state';

/** The Lease handed out by the memory and file stores. */
export class LocalLease extends HeldLease<LocalLease> {
  constructor(
    id: string,
    readonly ttlSeconds: number,
    revokeFn: (lease: LocalLease) => Promise<void>,
  ) {
    super(id, revokeFn);
  }
}

interface Held {
  lease: LocalLease;
  /** Stops what the client does to keep the lease alive. */
  stop: () => void;
}

export class OwnLeases {
  private readonly held = new Map<string, Held>();

  add(lease: LocalLease, stop: () => void = () => undefined): void {
    this.held.set(lease.id, { lease, stop });
  }

  /** Forgets the lease (revoked by its holder, or its client closing); stops keeping it alive. */
  remove(id: string): void {
    this.held.get(id)?.stop();
    this.held.delete(id);
  }

  /** Forgets every lease; returns them. */
  removeAll(): LocalLease[] {
    const leases = [...this.held.values()].map(({ lease }) => lease);
    for (const { lease } of [...this.held.values()]) this.remove(lease.id);
    return leases;
  }

  /** Marks lost every lease that `state` no longer has. */
  check(state: KvState): void {
    for (const { lease } of [...this.held.values()]) {
      if (state.leases.has(lease.id)) continue;
      this.remove(lease.id);
      lease.markLost();
    }
  }
}
