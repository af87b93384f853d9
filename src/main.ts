/**
 * The composition root: the one place that builds the concrete store,
 * dataplane and Docker client and wires them into the services, the agent
 * and the plugin server.
 */
import createDebug from 'debug';
import { Agent } from './agent/agent';
import { buildApp } from './api/app';
import { listenUnix } from './api/server';
import type { AgentConfig } from './config';
import { SpawnRunner } from './dataplane/linux/command-runner';
import { IpSessionRunner } from './dataplane/linux/ip-session';
import { LinuxDataplane, sysctlWriter } from './dataplane/linux/linux-dataplane';
import { Resolver } from './dns/server';
import { DNS_PORT, formatUpstream } from './dns/upstreams';
import { NetworkDriver } from './driver/network-service';
import { errorMessage } from './errors';
import { Ipam, knownLater } from './ipam/ipam-service';
import { DockerApi, dockerClient } from './labels/docker';
import { NO_METRICS } from './metrics/metrics';
import { PrometheusMetrics, agentReadings } from './metrics/prometheus';
import { listenMetrics } from './metrics/server';
import { openStore } from './store/open-store';
import { Registry } from './store/registry';

const debug = createDebug('sluice:main');

export async function runAgent(config: AgentConfig): Promise<void> {
  const store = openStore(config.store, config.etcd);
  const registry = new Registry(store);
  const commands = new SpawnRunner();
  const dataplane = new LinuxDataplane(commands, sysctlWriter(config.sysctlNetDir), undefined, new IpSessionRunner(commands));
  const docker = new DockerApi(dockerClient(config.dockerHost), config.driverName);
  const ipam = new Ipam(registry, {
    node: config.node,
    defaultSupernet: config.defaultSupernet,
    defaultSubnetPrefix: config.defaultSubnetPrefix,
    defaultBlockSize: config.blockSize,
  }, knownLater(() => agent));
  const { metricsAddr } = config;
  const metrics = metricsAddr && new PrometheusMetrics(agentReadings(config.node, () => agent.view, store, dataplane));
  if (config.dnsUpstreams.length === 0) console.error('sluice agent: no DNS upstream (--dns-upstream, /etc/resolv.conf): names outside the cluster get SERVFAIL');
  const startNames = (address: string): Promise<Resolver> => Resolver.start({ address, port: DNS_PORT, upstreams: config.dnsUpstreams });
  const agent: Agent = new Agent(config, registry, dataplane, docker, ipam, undefined, metrics ?? NO_METRICS, startNames);
  const driver = new NetworkDriver(registry, ipam, dataplane, docker, agent, { node: config.node, dnsAddress: config.dnsAddress });
  const server = await listenUnix(buildApp({ network: driver, ipam, metrics }), config.socket);
  const metricsListener = metricsAddr && metrics && (await listenMetrics(metrics.registry, metricsAddr.host, metricsAddr.port));
  const serving = metricsListener ? `, metrics on http://${metricsAddr.host}:${metricsAddr.port}/metrics` : '';
  console.error(`sluice agent: node ${config.node} (${config.nodeIp}), store ${store.description}, serving ${config.socket}${serving}`);

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.error(`sluice agent: ${signal}: stopping (containers keep their network)`);
    void (async () => {
      await server.close();
      await metricsListener?.close();
      await agent.stop();
      await store.close();
      process.exit(0);
    })().catch((err: unknown) => {
      console.error(`sluice agent: shutdown: ${errorMessage(err)}`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGUSR2', () => {
    agent.rotateWireguardKey().catch((err: unknown) => console.error(`sluice agent: rotating the WireGuard key: ${errorMessage(err)}`));
  });
  // A bug in one request must not take down the network of every container on the host.
  process.on('unhandledRejection', (err) => console.error(`sluice agent: unhandled: ${err instanceof Error && err.stack ? err.stack : errorMessage(err)}`));

  await agent.start();
  console.error(`sluice agent: serving names on ${config.dnsAddress}:${DNS_PORT}, forwarding others to ${config.dnsUpstreams.map(formatUpstream).join(', ') || 'nobody'}`);
  debug('agent in sync');
}
