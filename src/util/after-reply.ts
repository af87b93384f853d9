/**
 * Resolves once the plugin call in progress has sent its reply (the reply goes out in the
 * microtasks and ticks before this). Work started then, a process spawned above all, which holds
 * the event loop for a millisecond or two, overlaps Docker's next step instead of lengthening the call.
 */
export function afterReply(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
