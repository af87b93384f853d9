/** Cluster states for the compiler tests: host h1 is "this host", h2 a remote one. */
import type { EndpointRecord, Labels, NetworkRecord, PortMapping } from '../../../src/model';
import type { CompileInput } from '../../../src/policy/compile';
import { parsePolicies } from '../../../src/policy-document/policy';
import { protection, type ControlPlane } from '../../../src/policy/protect';

export const appnet: NetworkRecord = { key: '10.96.0.0-16', subnet: '10.96.0.0/16', blockSize: 26, gateway: '10.96.0.1', name: 'appnet' };
export const dbnet: NetworkRecord = { key: '10.97.0.0-16', subnet: '10.97.0.0/16', blockSize: 26, gateway: '10.97.0.1', name: 'dbnet' };

/** Endpoint IDs double as readable interface names (`sl<id>`): the compiler treats both as opaque. */
export function endpoint(
  id: string,
  node: string,
  network: NetworkRecord,
  address: string,
  labels: Labels | null,
  ports: PortMapping[] = [],
): EndpointRecord {
  return { id, network: network.key, node, address, hostIfname: `slv${id}`, labels, ports };
}

export const web1 = endpoint('web1', 'h1', appnet, '10.96.0.2', { role: 'web' });
export const client1 = endpoint('client1', 'h1', appnet, '10.96.0.3', { role: 'client' });
/** On the other host: only feeds ipsets here. */
export const client2 = endpoint('client2', 'h2', appnet, '10.96.0.66', { role: 'client' });
export const db1 = endpoint('db1', 'h1', dbnet, '10.97.0.2', { role: 'db' });
export const db2 = endpoint('db2', 'h2', dbnet, '10.97.0.66', { role: 'db', tier: 'backend' });

export const WEB_FROM_CLIENT = `
kind: NetworkPolicy
name: web-from-client
network: appnet
selector: role == 'web'
order: 100
ingress:
  - action: allow
    protocol: tcp
    from: role == 'client'
    ports: [80, "8000-8100"]
  - action: allow
    protocol: tcp
    fromNets: [192.0.2.0/24]
    ports: [443]
  - action: allow
    protocol: icmp
`;

/** Clients may open nothing at all. */
export const CLIENT_NO_EGRESS = `
kind: NetworkPolicy
name: client-no-egress
selector: role == 'client'
egress: []
`;

export const DNS_ADDRESS = '169.254.53.53';

export const CLIENT_EGRESS = `
kind: NetworkPolicy
name: client-egress
selector: role == 'client'
order: 10
egress:
  - action: deny
    protocol: tcp
    to: role == 'db'
    ports: [5432]
  - action: allow
    toNets: [0.0.0.0/0]
---
kind: NetworkPolicy
name: client-dns
selector: role == 'client'
egress:
  - action: allow
    protocol: udp
    toNets: [10.97.0.0/16, 198.51.100.53/32]
    ports: [53]
`;

const ALLOW_ALL_EGRESS = `
kind: NetworkPolicy
name: allow-all-egress
selector: all()
egress: [{action: allow}]
`;

/** etcd runs on 192.0.2.100 and on h2 (192.0.2.2); --protect adds a whole address and a port. */
export const CONTROL_PLANE: ControlPlane = {
  store: [
    { address: '192.0.2.100', port: 2379 },
    { address: '192.0.2.2', port: 2379 },
  ],
  extra: [{ address: '198.51.100.7' }, { address: '198.51.100.8', port: 8500 }],
  agentPorts: [],
};

export const fixtures: Record<string, CompileInput> = {
  'no-policies': {
    node: 'h1',
    networks: [appnet],
    endpoints: [web1, client1, client2],
    policies: [],
  },
  'two-networks': {
    node: 'h1',
    networks: [appnet, dbnet],
    endpoints: [web1, db1, db2],
    policies: [],
  },
  'web-from-client': {
    node: 'h1',
    networks: [appnet, dbnet],
    endpoints: [web1, client1, client2, db1],
    policies: parsePolicies(WEB_FROM_CLIENT),
  },
  'egress-rules': {
    node: 'h1',
    networks: [appnet, dbnet],
    endpoints: [client1, client2, db1, db2],
    policies: parsePolicies(CLIENT_EGRESS),
  },
  'fail-closed': {
    node: 'h1',
    networks: [appnet],
    endpoints: [
      endpoint('new1', 'h1', appnet, '10.96.0.4', null),
      endpoint('orphan1', 'h1', dbnet, '10.97.0.9', { role: 'web' }),
      endpoint('new2', 'h2', appnet, '10.96.0.67', null),
      web1,
    ],
    policies: parsePolicies(WEB_FROM_CLIENT),
  },
  'port-mappings': {
    node: 'h1',
    networks: [appnet],
    endpoints: [
      endpoint('web1', 'h1', appnet, '10.96.0.2', { role: 'web' }, [
        { proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 },
        { proto: 'udp', containerPort: 53, hostIp: '192.0.2.10', hostPort: 5353, hostPortEnd: 5353 },
        { proto: 'tcp', containerPort: 9000, hostPort: 9000, hostPortEnd: 9010 },
        { proto: 'sctp', containerPort: 7, hostPort: 7, hostPortEnd: 7 },
      ]),
      endpoint('web2', 'h2', appnet, '10.96.0.66', { role: 'web' }, [{ proto: 'tcp', containerPort: 80, hostPort: 8080, hostPortEnd: 8080 }]),
    ],
    policies: [],
  },
  'dns-under-egress-deny': {
    node: 'h1',
    networks: [appnet],
    endpoints: [web1, client1],
    policies: parsePolicies(CLIENT_NO_EGRESS),
    protection: protection(CONTROL_PLANE, ['192.0.2.1'], '192.0.2.1'),
    dnsAddress: DNS_ADDRESS,
  },
  'control-plane': {
    node: 'h1',
    networks: [appnet],
    endpoints: [web1, client1, client2],
    policies: parsePolicies(ALLOW_ALL_EGRESS),
    // h1 is 192.0.2.1, h2 192.0.2.2.
    protection: protection(CONTROL_PLANE, ['192.0.2.1', '192.0.2.2'], '192.0.2.1'),
  },
};
