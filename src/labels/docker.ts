/**
 * What the agent learns from the Docker Engine API: which container holds an
 * endpoint and its labels (Docker never sends them to a network plugin), the
 * host's sluice networks for reconciliation, and events for live updates.
 * Never ContainerInspect from inside a plugin call: it waits for the
 * container lock that dockerd holds across Join (see the protocol notes).
 */
import Docker from 'dockerode';
import createDebug from 'debug';
import { BadRequestError, DockerRefusedError, DockerUnavailableError, errorMessage } from '../errors';
import type { Labels } from '../model';

const debug = createDebug('sluice:docker');

const API_TIMEOUT_MS = 5000;

export function dockerClient(url: string): Docker {
  if (url.startsWith('unix://')) return new Docker({ socketPath: url.slice('unix://'.length), timeout: API_TIMEOUT_MS });
  const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(url);
  if (tcp) return new Docker({ host: tcp[1], port: Number(tcp[2]), timeout: API_TIMEOUT_MS });
  throw new BadRequestError(`--docker-host ${url}: expected unix:///PATH or tcp://HOST:PORT`);
}

export interface DockerEndpoint {
  endpointId: string;
  containerId: string;
}

export interface DockerNetwork {
  id: string;
  name: string;
  subnet: string | undefined;
  endpoints: DockerEndpoint[];
}

export type ContainerEvent =
  | { kind: 'container'; action: string; containerId: string; name: string; labels: Labels }
  | { kind: 'network'; action: string; containerId: string; networkId: string };

/** A running container's names: its name and, per Docker network ID, its aliases there. */
export interface ContainerNames {
  name: string;
  aliases: ReadonlyMap<string, string[]>;
}

/** Which container holds an endpoint, learned from Docker without taking the container lock. */
export interface ContainerIdentity {
  containerId: string;
  containerName: string;
  labels: Labels;
}

export interface ContainerLookup {
  /** Resolves the container joining `endpointId`, or undefined if Docker cannot tell yet. */
  containerOf(dockerNetworkId: string, endpointId: string): Promise<ContainerIdentity | undefined>;
}

/** What the agent needs from the Docker Engine of its host. */
export interface DockerHost extends ContainerLookup {
  /** Never from inside a plugin call (ContainerInspect takes the container lock); undefined when the container is gone. */
  containerNames(containerId: string): Promise<ContainerNames | undefined>;
  sluiceNetworks(): Promise<DockerNetwork[]>;
  createNetwork(name: string, subnet: string): Promise<void>;
  removeNetwork(id: string): Promise<void>;
  watchEvents(onEvent: (event: ContainerEvent) => void, onReconnect: () => void): { close(): void };
}

export class DockerApi implements DockerHost {
  /** `driverName`: what Docker calls this plugin: the socket's name, or a managed plugin's full name. */
  constructor(
    private readonly docker: Docker,
    private readonly driverName: string,
  ) {}

  /**
   * During Join the endpoint is listed in NetworkInspect under "ep-<id>" with
   * the container's name; ContainerList (a lock-free snapshot) then gives the
   * labels. Both calls are safe while dockerd holds the container lock.
   * A container on its first start is listed as created until it runs: those
   * are listed beside the inspect, which saves a round trip after it unless
   * the container ran before (docker start, network connect).
   */
  async containerOf(dockerNetworkId: string, endpointId: string): Promise<ContainerIdentity | undefined> {
    const [network, starting] = await Promise.all([
      dockerCall('inspect a network', () => this.docker.getNetwork(dockerNetworkId).inspect()),
      dockerCall('list containers', () => this.docker.listContainers({ all: true, filters: { status: ['created'] } })),
    ]);
    const entry = Object.values(network.Containers ?? {}).find((c) => c.EndpointID === endpointId);
    if (!entry) return undefined;
    const named = (containers: Docker.ContainerInfo[]) => containers.find((c) => c.Names.includes(`/${entry.Name}`));
    const container =
      named(starting) ?? named(await dockerCall('list containers', () => this.docker.listContainers({ all: true, filters: { name: [`^/${entry.Name}$`] } })));
    if (!container) return undefined;
    return { containerId: container.Id, containerName: entry.Name, labels: container.Labels ?? {} };
  }

  /**
   * Aliases (`--network-alias`, compose service names) are only in
   * ContainerInspect: ContainerList leaves them out. Docker's short-ID alias
   * is dropped (its own DNS answers that on the container's host).
   */
  async containerNames(containerId: string): Promise<ContainerNames | undefined> {
    const container = await dockerCall('inspect a container', () => this.docker.getContainer(containerId).inspect()).catch((err: unknown) => {
      // Gone since the event that asked: nothing to name.
      if (err instanceof DockerRefusedError && err.statusCode === 404) return undefined;
      throw err;
    });
    if (!container) return undefined;
    const aliases = new Map<string, string[]>();
    for (const settings of Object.values(container.NetworkSettings?.Networks ?? {})) {
      const names = Array.isArray(settings.Aliases) ? (settings.Aliases as unknown[]) : [];
      aliases.set(settings.NetworkID, names.filter((a): a is string => typeof a === 'string' && a !== '' && !container.Id.startsWith(a)));
    }
    return { name: container.Name.replace(/^\//, ''), aliases };
  }

  /** This host's Docker networks with the sluice driver, and the endpoints Docker knows in them. */
  async sluiceNetworks(): Promise<DockerNetwork[]> {
    const networks = await dockerCall('list networks', () => this.docker.listNetworks({ filters: { driver: [this.driverName] } }));
    return Promise.all(
      networks.map(async (summary) => {
        const network = await dockerCall('inspect a network', () => this.docker.getNetwork(summary.Id).inspect());
        return {
          id: network.Id,
          name: network.Name,
          subnet: network.IPAM?.Config?.[0]?.Subnet,
          endpoints: Object.entries(network.Containers ?? {}).map(([containerId, c]) => ({
            endpointId: c.EndpointID,
            containerId,
          })),
        };
      }),
    );
  }

  async createNetwork(name: string, subnet: string): Promise<void> {
    await dockerCall(`create network ${name}`, () =>
      this.docker.createNetwork({
        Name: name,
        Driver: this.driverName,
        CheckDuplicate: true,
        IPAM: { Driver: this.driverName, Config: [{ Subnet: subnet }] },
      }),
    );
  }

  async removeNetwork(id: string): Promise<void> {
    await dockerCall(`remove network ${id.slice(0, 12)}`, () => this.docker.getNetwork(id).remove());
  }

  /**
   * Streams container and network events until closed, reconnecting after
   * errors; `onReconnect` runs after each reconnect so missed events can be
   * made up for by a re-list.
   */
  watchEvents(onEvent: (event: ContainerEvent) => void, onReconnect: () => void): { close(): void } {
    let closed = false;
    let stream: NodeJS.ReadableStream | undefined;
    let timer: NodeJS.Timeout | undefined;
    const connect = async (): Promise<void> => {
      try {
        stream = await this.docker.getEvents({ filters: { type: ['container', 'network'] } });
        if (closed) return void destroy(stream);
        onReconnect();
        let buffered = '';
        stream.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          let newline: number;
          while ((newline = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            const event = parseEvent(line);
            if (event) onEvent(event);
          }
        });
        stream.on('error', retry);
        stream.on('end', retry);
      } catch (err) {
        retry(err);
      }
    };
    const retry = (err?: unknown): void => {
      if (closed || timer) return;
      debug('event stream lost (%s), reconnecting', err instanceof Error ? err.message : 'ended');
      timer = setTimeout(() => {
        timer = undefined;
        void connect();
      }, 1000);
    };
    void connect();
    return {
      close: () => {
        closed = true;
        if (timer) clearTimeout(timer);
        if (stream) destroy(stream);
      },
    };
  }
}

/** Runs one Docker API call, its failure turned into the error class that says whether to retry. */
async function dockerCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const status = (err as { statusCode?: unknown }).statusCode;
    const message = `Docker: cannot ${what}: ${errorMessage(err)}`;
    // No status: no answer at all (socket gone, connection refused).
    if (typeof status === 'number' && status < 500) throw new DockerRefusedError(message, status);
    throw new DockerUnavailableError(message);
  }
}

function destroy(stream: NodeJS.ReadableStream): void {
  (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}

interface RawEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** Container events carry every label in Actor.Attributes, mixed with name and image. */
function parseEvent(line: string): ContainerEvent | undefined {
  let raw: RawEvent;
  try {
    raw = JSON.parse(line) as RawEvent;
  } catch {
    // Not an event dockerd sends: skipped, the stream goes on.
    return undefined;
  }
  const attributes = raw.Actor?.Attributes ?? {};
  if (raw.Type === 'container' && raw.Actor?.ID) {
    // Docker adds the name and image beside the labels.
    const { name = '', image, ...labels } = attributes;
    return { kind: 'container', action: raw.Action ?? '', containerId: raw.Actor.ID, name, labels };
  }
  if (raw.Type === 'network' && raw.Actor?.ID && attributes.container) {
    return { kind: 'network', action: raw.Action ?? '', containerId: attributes.container, networkId: raw.Actor.ID };
  }
  return undefined;
}
