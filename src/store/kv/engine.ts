/**
 * The engine the memory and file stores share: it holds the current
 * `KvState` and the watchers. Whenever the state changes it "pumps" each
 * watcher from the history, in a microtask, so events are never delivered
 * inside the mutating call and always in order; and it keeps one timer, on
 * its clock, for the next lease to fall due, while any client is attached.
 * Several clients can share one engine, like several processes on one etcd.
 */
import { StoreUnavailableError } from '../../errors';
import { systemClock, type Clock } from '../../util/clock';
import type { WatchEvent, WatchHandlers } from '../store';
import { KvState, newStoreId } from './state';

interface EngineWatcher {
  readonly prefix: string;
  readonly handlers: WatchHandlers;
  /** The next revision to deliver. */
  next: number;
  /** The store revision at the last pump, to notice a store that went back. */
  seenRevision: number;
  storeId: string;
  closed: boolean;
  scheduled: boolean;
}

export interface KvEngineOptions {
  clock?: Clock;
  historyLimit?: number;
  /** Initial state; by default an empty one with a new store id. */
  state?: KvState;
  /**
   * Removes the leases that fell due, when the clock says one did. By default
   * at once, in the engine's state; a store that keeps its state elsewhere
   * (a file) does it there and hands the result to replace().
   */
  expire?: () => Promise<void> | void;
}

/** What a closed client of an engine answers. */
export function closedStoreError(store: string): StoreUnavailableError {
  return new StoreUnavailableError(`${store} is closed: open the store again`);
}

export class KvEngine {
  readonly clock: Clock;
  private current: KvState;
  private readonly watchers = new Set<EngineWatcher>();
  private readonly clients = new Set<() => void>();
  private readonly expire: () => Promise<void> | void;
  private cancelExpiry: (() => void) | undefined;

  constructor(options: KvEngineOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.current = options.state ?? KvState.empty(newStoreId(), options.historyLimit);
    this.expire =
      options.expire ??
      (() => {
        this.mutate((s) => s.expireDue(this.clock.now()));
      });
  }

  get state(): KvState {
    return this.current;
  }

  /** Applies `fn` to the live state and publishes what it changed. `fn` must validate before changing. */
  mutate<T>(fn: (state: KvState) => T): T {
    this.current.changed = false;
    const result = fn(this.current);
    if (this.current.changed) this.publish();
    return result;
  }

  /** Swaps in a new state (a batch applied to a copy, or a file another process wrote) and publishes it. */
  replace(next: KvState): void {
    this.current = next;
    this.publish();
  }

  /** Registers a watcher; returns the function that removes it. */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): () => void {
    const s = this.current;
    const watcher: EngineWatcher = {
      prefix,
      handlers,
      // As etcd: a start revision of 0 means "from now on".
      next: fromRevision >= 1 ? fromRevision : s.revision + 1,
      seenRevision: s.revision,
      // A store with no data anywhere yet has no id: the watch takes the first one it sees.
      storeId: s.storeId,
      closed: false,
      scheduled: false,
    };
    this.watchers.add(watcher);
    this.schedule(watcher);
    return () => {
      watcher.closed = true;
      this.watchers.delete(watcher);
    };
  }

  /** Ends every watch with onReset, e.g. when the file can no longer be read. */
  resetWatchers(reason: string): void {
    for (const watcher of this.watchers) this.reset(watcher, reason);
  }

  /** Expires a lease now, as if its holder had stopped keeping it alive: for tests of lease loss. */
  expireLease(id: string): void {
    this.mutate((s) => s.revokeLease(id));
  }

  /**
   * Registers a client; `onChange` runs after every change (clients check
   * their leases there). Leases expire on the clock only while a client is
   * attached, so a test's engine holds no timer once its stores are closed.
   */
  attach(onChange: () => void): () => void {
    this.clients.add(onChange);
    this.scheduleExpiry();
    return () => {
      this.clients.delete(onChange);
      this.scheduleExpiry();
    };
  }

  private publish(): void {
    for (const watcher of this.watchers) this.schedule(watcher);
    for (const onChange of this.clients) onChange();
    this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    const next = this.current.nextExpiry();
    if (this.clients.size === 0 || next === undefined) return;
    this.cancelExpiry = this.clock.setTimer(
      () => {
        this.cancelExpiry = undefined;
        // Looked at again afterwards: a timer may fire a moment early, with nothing due yet. Not
        // after a failure, which would only fail again at once; the next change schedules anew.
        void Promise.resolve(this.expire()).then(
          () => this.scheduleExpiry(),
          () => undefined,
        );
      },
      Math.max(0, next - this.clock.now()),
    );
  }

  private schedule(watcher: EngineWatcher): void {
    if (watcher.scheduled || watcher.closed) return;
    watcher.scheduled = true;
    queueMicrotask(() => this.pump(watcher));
  }

  /** Delivers everything from `watcher.next` to the current revision, or resets it if that is impossible. */
  private pump(watcher: EngineWatcher): void {
    watcher.scheduled = false;
    if (watcher.closed) return;
    const s = this.current;
    if (watcher.storeId === '') watcher.storeId = s.storeId;
    if (s.storeId !== watcher.storeId) {
      this.reset(watcher, 'the store was replaced by a different one');
      return;
    }
    if (s.revision < watcher.seenRevision) {
      this.reset(watcher, `the store went back from revision ${watcher.seenRevision} to ${s.revision}`);
      return;
    }
    watcher.seenRevision = s.revision;
    if (s.revision < watcher.next) return;
    if (watcher.next <= s.compactRevision) {
      this.reset(
        watcher,
        `revision ${watcher.next} is no longer in the history (kept from ${s.compactRevision + 1}); list again`,
      );
      return;
    }
    const events: WatchEvent[] = [];
    for (const entry of s.history) {
      if (entry.revision < watcher.next) continue;
      for (const event of entry.events) {
        if ((event.type === 'put' ? event.kv.key : event.key).startsWith(watcher.prefix)) events.push(event);
      }
    }
    watcher.next = s.revision + 1;
    if (events.length > 0) watcher.handlers.onEvents(events, s.revision);
  }

  private reset(watcher: EngineWatcher, reason: string): void {
    if (watcher.closed) return;
    watcher.closed = true;
    this.watchers.delete(watcher);
    watcher.handlers.onReset(reason);
  }
}
