/**
 * A watch on etcd: events as they come, and onReset once, outside the
 * library's call stack, when etcd cancels it (its start revision was
 * compacted), the stream breaks, or it does not start within the deadline.
 */
import type { IKeyValue, Watcher } from 'etcd3';
import { errorMessage, type SluiceError } from '../../errors';
import type { KeyValue, Watch, WatchEvent, WatchHandlers } from '../store';

export class EtcdWatch implements Watch {
  private active = true;
  private connected = false;
  private cancelled: Promise<void> | undefined;
  private readonly startTimer: NodeJS.Timeout;

  constructor(
    private readonly watcher: Watcher,
    fromRevision: number,
    private readonly handlers: WatchHandlers,
    description: string,
    private readonly timeoutMs: number,
    private readonly hooks: { refusal: (err: Error) => SluiceError | undefined; closed: () => void },
  ) {
    const from = fromRevision >= 1 ? `revision ${fromRevision}` : 'now';
    this.startTimer = setTimeout(
      () => this.reset(`${description} did not start a watch within ${timeoutMs / 1000}s: is etcd running?`, true),
      timeoutMs,
    );
    watcher.on('connected', () => {
      this.connected = true;
      clearTimeout(this.startTimer);
    });
    watcher.on('data', (res) => {
      if (!this.active) return;
      const events = res.events.map(toWatchEvent);
      if (events.length > 0) this.handlers.onEvents(events, Number(res.header.revision));
    });
    watcher.on('disconnected', (err) =>
      this.reset(hooks.refusal(err)?.message ?? `lost the watch stream to ${description}: ${errorMessage(err)}`, true),
    );
    // etcd cancelled it; the library has already dropped it, so there is nothing to cancel.
    watcher.on('error', (err) =>
      this.reset(
        hooks.refusal(err)?.message ??
          `${description} ended the watch from ${from} (${errorMessage(err)}): its history was probably compacted; list again`,
        false,
      ),
    );
  }

  close(): Promise<void> {
    this.active = false;
    return this.cancel(true);
  }

  /** Once: stops delivering, tells the caller, frees the library's watcher. Outside the library's call stack. */
  private reset(reason: string, cancel: boolean): void {
    if (!this.active) return;
    this.active = false;
    void this.cancel(cancel);
    queueMicrotask(() => this.handlers.onReset(reason));
  }

  private cancel(viaEtcd: boolean): Promise<void> {
    this.cancelled ??= (async () => {
      clearTimeout(this.startTimer);
      this.hooks.closed();
      if (!viaEtcd) return;
      // Bounded: a cancel waits for etcd's reply, and etcd may be gone.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        // A cancel etcd refuses leaves nothing to close: the watch dies with the connection.
        this.watcher.cancel().catch(() => undefined),
        new Promise<void>((done) => (timer = setTimeout(done, this.connected ? this.timeoutMs : 0))),
      ]);
      clearTimeout(timer);
    })();
    return this.cancelled;
  }
}

export function toKeyValue(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) };
}

function toWatchEvent(event: { type: 'Put' | 'Delete'; kv: IKeyValue }): WatchEvent {
  return event.type === 'Put'
    ? { type: 'put', kv: toKeyValue(event.kv) }
    : { type: 'delete', key: event.kv.key.toString(), modRevision: Number(event.kv.mod_revision) };
}
