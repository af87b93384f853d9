/**
 * The Lease every store hands out: an id, a revoke that the store performs,
 * and onLost callbacks fired once, outside the caller's stack, when the store
 * finds the lease expired or impossible to keep alive.
 */
import { BadRequestError } from '../errors';
import type { Lease } from './store';

export class HeldLease<Self extends HeldLease<Self>> implements Lease {
  private readonly callbacks: (() => void)[] = [];
  private lost = false;

  constructor(
    readonly id: string,
    private readonly revokeFn: (lease: Self) => Promise<void>,
  ) {}

  onLost(callback: () => void): void {
    if (this.lost) queueMicrotask(callback);
    else this.callbacks.push(callback);
  }

  revoke(): Promise<void> {
    return this.revokeFn(this as unknown as Self);
  }

  markLost(): void {
    if (this.lost) return;
    this.lost = true;
    for (const callback of this.callbacks.splice(0)) queueMicrotask(callback);
  }
}

export function validateTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new BadRequestError(`lease TTL must be a whole number of seconds, at least 1; got ${ttlSeconds}`);
  }
}
