/** The Docker networks defined with `sluice network create`: created on this host, removed once their definition is gone. */
import createDebug from 'debug';
import type { DockerHost } from '../labels/docker';
import type { Registry } from '../store/registry';
import type { ClusterView } from './view';

const debug = createDebug('sluice:agent');

export class ManagedNetworks {
  private following = false;

  constructor(
    private readonly node: string,
    private readonly view: ClusterView,
    private readonly docker: DockerHost,
    private readonly registry: Registry,
  ) {}

  /** One pass over the definitions, unless one is running: creating a network calls back into this plugin. */
  async follow(): Promise<void> {
    if (this.following) return;
    this.following = true;
    try {
      const local = this.view.networksOn(this.node);
      for (const network of this.view.networks.values()) {
        if (!network.managed || !network.name || local.has(network.key)) continue;
        debug('creating docker network %s (%s)', network.name, network.subnet);
        await this.docker.createNetwork(network.name, network.subnet);
      }
      const prefix = `${this.node}/`;
      for (const [key, net] of [...this.view.dockerNets]) {
        if (!key.startsWith(prefix) || this.view.networks.has(net)) continue;
        // The view may simply not have seen a brand-new network yet: ask the store itself.
        if (await this.registry.getNetwork(net)) continue;
        await this.docker.removeNetwork(key.slice(prefix.length));
      }
    } finally {
      this.following = false;
    }
  }
}
