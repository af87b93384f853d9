/** An in-memory Docker host: networks, their endpoints and containers, as the agent sees them. */
import { DockerUnavailableError } from '../../src/errors';
import type { ContainerIdentity } from '../../src/labels/docker';
import type { ContainerEvent, ContainerNames, DockerHost, DockerNetwork } from '../../src/labels/docker';

export class FakeDocker implements DockerHost {
  readonly networks = new Map<string, DockerNetwork>();
  /** endpoint ID → container holding it. */
  readonly containers = new Map<string, ContainerIdentity>();
  /** container ID → its name and aliases per network, once it runs. */
  readonly names = new Map<string, ContainerNames>();
  readonly created: { name: string; subnet: string }[] = [];
  /** dockerd is not running: listing fails, as it does against a dead socket. */
  away = false;
  private listeners: ((event: ContainerEvent) => void)[] = [];

  addNetwork(id: string, name: string, subnet: string): void {
    this.networks.set(id, { id, name, subnet, endpoints: [] });
  }

  /** A container Docker runs on `networkId` through `endpointId`. */
  run(networkId: string, endpointId: string, identity: ContainerIdentity): void {
    this.networks.get(networkId)!.endpoints.push({ endpointId, containerId: identity.containerId });
    this.containers.set(endpointId, identity);
  }

  /** The container is gone, as after a crash: Docker never told the plugin. */
  forget(endpointId: string): void {
    for (const network of this.networks.values()) network.endpoints = network.endpoints.filter((e) => e.endpointId !== endpointId);
    this.containers.delete(endpointId);
  }

  emit(event: ContainerEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  containerOf(_dockerNetworkId: string, endpointId: string): Promise<ContainerIdentity | undefined> {
    return Promise.resolve(this.containers.get(endpointId));
  }

  containerNames(containerId: string): Promise<ContainerNames | undefined> {
    return Promise.resolve(this.names.get(containerId));
  }

  sluiceNetworks(): Promise<DockerNetwork[]> {
    if (this.away) return Promise.reject(new DockerUnavailableError('Docker: cannot list networks: connect ENOENT /var/run/docker.sock'));
    return Promise.resolve(structuredClone([...this.networks.values()]));
  }

  createNetwork(name: string, subnet: string): Promise<void> {
    this.created.push({ name, subnet });
    return Promise.resolve();
  }

  removeNetwork(id: string): Promise<void> {
    this.networks.delete(id);
    return Promise.resolve();
  }

  watchEvents(onEvent: (event: ContainerEvent) => void): { close(): void } {
    this.listeners.push(onEvent);
    return { close: () => (this.listeners = this.listeners.filter((l) => l !== onEvent)) };
  }
}
