/**
 * Where this agent's control plane is (the store's addresses, `--protect`, its own ports): the
 * input of the firewall's protection (policy/protect.ts), resolved once at start.
 */
import { lookup } from 'node:dns/promises';
import type { ControlPlane, ProtectedDestination } from '../policy/protect';
import { storeEndpoints } from '../store/open-store';

/** IPv4 addresses of a host name (an address is its own); the firewall needs addresses, the store URL may hold names. */
export type Resolver = (host: string) => Promise<string[]>;

export const resolveIpv4: Resolver = async (host) => (await lookup(host, { all: true, family: 4 })).map((a) => a.address);

/**
 * The control plane of the agent's configuration, the store URL's host names
 * resolved (once, at start). Bracketed IPv6 endpoints are left out:
 * containers have IPv4 only. The metrics port is an agent port: closed on
 * every node, since the agents are configured alike.
 */
export async function controlPlane(
  config: { store: string; protect: readonly ProtectedDestination[]; metricsAddr?: { port: number } | undefined },
  resolve: Resolver = resolveIpv4,
): Promise<ControlPlane> {
  const store = await Promise.all(
    storeEndpoints(config.store)
      .filter((endpoint) => !endpoint.startsWith('['))
      .map(async (endpoint) => {
        const colon = endpoint.lastIndexOf(':');
        const port = Number(endpoint.slice(colon + 1));
        return (await resolve(endpoint.slice(0, colon))).map((address) => ({ address, port }));
      }),
  );
  return { store: store.flat(), extra: [...config.protect], agentPorts: config.metricsAddr ? [config.metricsAddr.port] : [] };
}
