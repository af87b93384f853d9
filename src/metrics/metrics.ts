/**
 * What the plugin app and the agent report to metrics: three calls, so code
 * and tests without metrics pass NO_METRICS. The Prometheus side is
 * prometheus.ts; everything it reads rather than is told (endpoints, the
 * store, the kernel's rule counters) it asks for at scrape time.
 */

export interface Metrics {
  /** A plugin request answered: `method` is its endpoint (NetworkDriver.CreateEndpoint), `ok` a 2xx/3xx reply. */
  pluginRequest(method: string, ok: boolean, seconds: number): void;
  /** One apply of the desired state to the kernel (gateways, routes, firewall) finished. */
  dataplaneApplied(seconds: number): void;
  /** A batch of store changes, from being seen to the kernel holding it. */
  converged(seconds: number): void;
}

export const NO_METRICS: Metrics = {
  pluginRequest: () => undefined,
  dataplaneApplied: () => undefined,
  converged: () => undefined,
};

/** Seconds since `start` (a process.hrtime.bigint() reading). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}
