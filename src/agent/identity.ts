/**
 * Who is behind this host's endpoints, learned from Docker: the labels
 * policies select on (Join may not know them yet) and the names and aliases
 * every host's resolver answers. Written to the endpoint records, once per change.
 */
import { isBug } from '../errors';
import type { ContainerEvent, DockerHost } from '../labels/docker';
import type { EndpointRecord } from '../model';
import type { Registry } from '../store/registry';
import type { ClusterView } from './view';

export class Identities {
  constructor(
    private readonly node: string,
    private readonly view: ClusterView,
    private readonly docker: DockerHost,
    private readonly registry: Registry,
    /** Takes an updated endpoint into the view and the kernel. */
    private readonly endpointChanged: (endpoint: EndpointRecord) => Promise<void>,
  ) {}

  async onDockerEvent(event: ContainerEvent): Promise<void> {
    const connect = event.kind === 'network' && event.action === 'connect';
    if ((event.kind === 'container' && event.action === 'start') || connect) await this.learnMissingLabels();
    // Aliases are only known once the container runs (Join cannot ask for them);
    // a renamed container answers to its new name on every host.
    const running = event.kind === 'container' && (event.action === 'start' || event.action === 'rename');
    if (running || connect) await this.learnNames(event.containerId);
  }

  /** Endpoints whose container Docker could not name during Join stay fail-closed until this finds them. */
  async learnMissingLabels(): Promise<void> {
    for (const endpoint of this.view.endpointsOf(this.node).filter((e) => e.labels === null)) {
      const dockerNetworkId = this.view.dockerNetworkId(this.node, endpoint.network);
      if (dockerNetworkId === undefined) continue;
      const identity = await this.docker.containerOf(dockerNetworkId, endpoint.id).catch((err: unknown) => {
        // Docker cannot name this one now (its network gone, dockerd away): the others still may, the next resync retries.
        if (isBug(err)) throw err;
        return undefined;
      });
      if (identity) await this.record({ ...endpoint, ...identity });
    }
  }

  /** The container's current name and aliases on each of its endpoints here, for the resolvers of every host. */
  private async learnNames(containerId: string): Promise<void> {
    const endpoints = this.view.endpointsOf(this.node).filter((e) => e.containerId === containerId);
    if (endpoints.length === 0) return;
    const names = await this.docker.containerNames(containerId);
    if (!names) return;
    for (const endpoint of endpoints) {
      const dockerNetworkId = this.view.dockerNetworkId(this.node, endpoint.network);
      const aliases = dockerNetworkId === undefined ? undefined : names.aliases.get(dockerNetworkId);
      await this.record({ ...endpoint, containerName: names.name, ...(aliases && { aliases }) });
    }
  }

  /** Writes what was learned about an endpoint's container, unless nothing changed. */
  private async record(updated: EndpointRecord): Promise<void> {
    const current = this.view.endpoints.get(`${updated.node}/${updated.id}`);
    // Gone while Docker was asked (a `docker run --rm` container that exited at once): a record
    // brought back would be reconciled away later, releasing whoever holds its address by then.
    if (!current || sameIdentity(updated, current)) return;
    await this.registry.putEndpoint(updated);
    await this.endpointChanged(updated);
  }
}

/** Whether the container fields of two records agree: an unchanged one is not written again. */
function sameIdentity(a: EndpointRecord, b: EndpointRecord): boolean {
  const identity = (e: EndpointRecord): string => JSON.stringify([e.containerId, e.containerName, e.aliases, e.labels]);
  return identity(a) === identity(b);
}
