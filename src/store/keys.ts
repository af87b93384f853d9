/**
 * The only place store keys are built and parsed. Layout under /sluice/v1/:
 *
 *   nodes/<node>                        NodeRecord: address, backend, VTEP MAC, reclaim mark (kept until `sluice node rm`)
 *   alive/<node>                        liveness: on the node's short lease, kept alive by its agent
 *   networks/<net>                      NetworkRecord (+ managed flag), net = subnet with '/' as '-'
 *   pool-guard                          key of the last network created: each create rewrites it in its
 *                                       own transaction, on the condition that it is unchanged since the
 *                                       create listed the networks, so overlapping creates never both win
 *   blocks/<net>/<block>                BlockRecord: which node holds the block
 *   addresses/<net>/<block>/<ip>        AddressRecord: who holds the address
 *   endpoints/<node>/<endpoint>         EndpointRecord
 *   dockernets/<node>/<docker net id>   network key: Docker's NetworkID differs on every host
 *   policies/<name>                     Policy
 */
export const ROOT = '/sluice/v1/';

export function cidrKey(cidr: string): string {
  return cidr.replace('/', '-');
}

export function keyCidr(key: string): string {
  return key.replace('-', '/');
}

export const keys = {
  nodes: `${ROOT}nodes/`,
  node: (node: string) => `${ROOT}nodes/${node}`,
  alive: `${ROOT}alive/`,
  aliveNode: (node: string) => `${ROOT}alive/${node}`,
  networks: `${ROOT}networks/`,
  network: (net: string) => `${ROOT}networks/${net}`,
  poolGuard: `${ROOT}pool-guard`,
  blocks: (net: string) => `${ROOT}blocks/${net}/`,
  allBlocks: `${ROOT}blocks/`,
  block: (net: string, block: string) => `${ROOT}blocks/${net}/${cidrKey(block)}`,
  addresses: (net: string) => `${ROOT}addresses/${net}/`,
  blockAddresses: (net: string, block: string) => `${ROOT}addresses/${net}/${cidrKey(block)}/`,
  address: (net: string, block: string, ip: string) => `${ROOT}addresses/${net}/${cidrKey(block)}/${ip}`,
  allEndpoints: `${ROOT}endpoints/`,
  endpoints: (node: string) => `${ROOT}endpoints/${node}/`,
  endpoint: (node: string, id: string) => `${ROOT}endpoints/${node}/${id}`,
  allDockerNets: `${ROOT}dockernets/`,
  dockerNets: (node: string) => `${ROOT}dockernets/${node}/`,
  dockerNet: (node: string, dockerNetworkId: string) => `${ROOT}dockernets/${node}/${dockerNetworkId}`,
  policies: `${ROOT}policies/`,
  policy: (name: string) => `${ROOT}policies/${name}`,
};

/** A key's kind (its first segment under ROOT) and the rest of its path: ['blocks', '10.96.0.0-16/10.96.0.0-26']. */
export function splitKey(key: string): [kind: string, rest: string] {
  const path = key.startsWith(ROOT) ? key.slice(ROOT.length) : key;
  const slash = path.indexOf('/');
  return slash < 0 ? [path, ''] : [path.slice(0, slash), path.slice(slash + 1)];
}

/** The `count` segments after ROOT/<kind>/, each non-empty; undefined if the key has another shape. */
export function keySegments(key: string, kind: string, count: number): string[] | undefined {
  const [found, rest] = splitKey(key);
  if (!key.startsWith(ROOT) || found !== kind) return undefined;
  const parts = rest.split('/');
  return parts.length === count && parts.every((p) => p !== '') ? parts : undefined;
}

/** What a key of `kind` with `count` segments looks like, for messages: /sluice/v1/blocks/<1>/<2>. */
export function keyShape(kind: string, count: number): string {
  return `${ROOT}${kind}/${Array.from({ length: count }, (_, i) => `<${i + 1}>`).join('/')}`;
}

/** The last path segment of a key. */
export function leaf(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
