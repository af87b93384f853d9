import { PolicyError } from '../../../src/errors';
import { DEFAULT_ORDER, parsePolicies, policyToYaml, type Policy } from '../../../src/policy-document/policy';

const DESIGN_EXAMPLE = `
kind: NetworkPolicy
name: web-from-client
network: appnet            # optional: only endpoints of this network; default every sluice network
selector: role == 'web'    # endpoints this policy applies to
order: 100                 # optional, lower first; ties by name
ingress:
  - action: allow          # allow | deny
    protocol: tcp          # tcp | udp | icmp; omitted: any
    from: role == 'client' # optional selector of source endpoints, on any host
    fromNets: [192.0.2.0/24]  # optional CIDRs
    ports: [80, "8000-8100"]  # destination ports, tcp/udp only
egress:
  - action: allow
    protocol: tcp
    to: role == 'db'
    ports: [5432]
`;

describe('parsePolicies', () => {
  it('reads the example of the design document', () => {
    expect(parsePolicies(DESIGN_EXAMPLE)).toEqual<Policy[]>([
      {
        kind: 'NetworkPolicy',
        name: 'web-from-client',
        network: 'appnet',
        selector: "role == 'web'",
        order: 100,
        ingress: [{ action: 'allow', protocol: 'tcp', from: "role == 'client'", fromNets: ['192.0.2.0/24'], ports: [80, '8000-8100'] }],
        egress: [{ action: 'allow', protocol: 'tcp', to: "role == 'db'", ports: [5432] }],
      },
    ]);
  });

  it('reads several documents, skips empty ones, fills in defaults and canonical forms', () => {
    const policies = parsePolicies(`---
kind: NetworkPolicy
name: a
selector: "!has(x)  &&role=='y'"
ingress: []
---
---
kind: NetworkPolicy
name: b
selector: all()
egress: [{action: deny, protocol: udp, ports: ["53", "70-70", "1-65535"]}]
---
`);
    expect(policies).toEqual<Policy[]>([
      { kind: 'NetworkPolicy', name: 'a', selector: "!has(x) && role == 'y'", order: DEFAULT_ORDER, ingress: [] },
      { kind: 'NetworkPolicy', name: 'b', selector: 'all()', order: DEFAULT_ORDER, egress: [{ action: 'deny', protocol: 'udp', ports: [53, 70, '1-65535'] }] },
    ]);
  });

  it('reads back what policyToYaml writes, and the JSON the store keeps', () => {
    const [policy] = parsePolicies(DESIGN_EXAMPLE);
    const yaml = policyToYaml(policy!);
    expect(yaml).toBe(`kind: NetworkPolicy
name: web-from-client
network: appnet
selector: role == 'web'
order: 100
ingress:
  - action: allow
    protocol: tcp
    from: role == 'client'
    fromNets:
      - 192.0.2.0/24
    ports:
      - 80
      - 8000-8100
egress:
  - action: allow
    protocol: tcp
    to: role == 'db'
    ports:
      - 5432
`);
    expect(parsePolicies(yaml)).toEqual([policy]);
    expect(parsePolicies(JSON.stringify(policy))).toEqual([policy]);
    const [negated] = parsePolicies("{kind: NetworkPolicy, name: n, selector: '!has(a)', ingress: []}");
    expect(parsePolicies(policyToYaml(negated!))).toEqual([negated]);
  });

  const doc = (body: string): string => `kind: NetworkPolicy\nname: web\nselector: all()\n${body}`;

  it.each([
    ['', 'no policy found: expected a YAML document with kind: NetworkPolicy'],
    ['---\n', 'no policy found: expected a YAML document with kind: NetworkPolicy'],
    ['kind: NetworkPolicy\nname: a\nname: b\n', 'document 1: invalid YAML: Map keys must be unique at line 3, column 1'],
    ['kind: NetworkPolicy\nselector: !has(x)\n', "document 1: invalid YAML: Unresolved tag: !has(x) at line 2, column 11 (quote values that start with '!')"],
    ['- a\n- b\n', 'document 1: expected a mapping with kind: NetworkPolicy, found a list'],
    ['just text', 'document 1: expected a mapping with kind: NetworkPolicy, found "just text"'],
    ['name: web\nselector: all()\n', 'document 1 (name: web): kind: missing (expected NetworkPolicy)'],
    ['kind: Deployment\nname: web\n', 'document 1 (name: web): kind: "Deployment" is not NetworkPolicy'],
    ['kind: NetworkPolicy\nselector: all()\ningress: []\n', 'document 1: name: missing'],
    ['kind: NetworkPolicy\nname: Web_1\nselector: all()\ningress: []\n', 'document 1: name: "Web_1" is not a valid name'],
    [`kind: NetworkPolicy\nname: ${'a'.repeat(64)}\nselector: all()\ningress: []\n`, 'document 1: name: "aaaa'],
    ['kind: NetworkPolicy\nname: web\ningress: []\n', 'document 1 (name: web): selector: missing'],
    ['kind: NetworkPolicy\nname: web\nselector: 42\ningress: []\n', 'document 1 (name: web): selector: expected a string, found 42'],
    [
      "kind: NetworkPolicy\nname: web\nselector: 'role == '\ningress: []\n",
      'document 1 (name: web): selector: selector "role == ": at column 9: expected a quoted string',
    ],
    [doc('ingress: []\nport: 80\n'), 'document 1 (name: web): unknown field "port" (allowed: kind, name, network, selector, order, ingress, egress)'],
    [doc(''), 'document 1 (name: web): needs ingress or egress (an empty list denies all traffic in that direction)'],
    [doc('order: "1"\ningress: []\n'), 'document 1 (name: web): order: expected a number, found "1"'],
    [doc('order: .inf\ningress: []\n'), 'document 1 (name: web): order: expected a number, found Infinity'],
    [doc('network: "app net"\ningress: []\n'), 'document 1 (name: web): network: "app net" is not a valid network name'],
    [doc('ingress: {action: allow}\n'), 'document 1 (name: web): ingress: expected a list, found a mapping'],
    [doc('ingress: [allow]\n'), 'document 1 (name: web): ingress[0]: expected a mapping, found "allow"'],
    [doc('ingress: [{protocol: tcp}]\n'), 'document 1 (name: web): ingress[0].action: missing (allow or deny)'],
    [doc('ingress: [{action: permit}]\n'), 'document 1 (name: web): ingress[0].action: "permit" is not one of allow, deny'],
    [doc('ingress: [{action: allow, protocol: sctp}]\n'), 'document 1 (name: web): ingress[0].protocol: "sctp" is not one of tcp, udp, icmp'],
    [doc('ingress: [{action: allow, to: all()}]\n'), 'document 1 (name: web): ingress[0]: unknown field "to" (allowed: action, protocol, from, fromNets, ports)'],
    [doc('egress: [{action: allow, from: all()}]\n'), 'document 1 (name: web): egress[0]: unknown field "from" (allowed: action, protocol, to, toNets, ports)'],
    [doc('ingress: [{action: allow, from: "a =="}]\n'), 'document 1 (name: web): ingress[0].from: selector "a ==": at column 5: expected a quoted string'],
    [doc('egress: [{action: allow, to: "has(a"}]\n'), 'document 1 (name: web): egress[0].to: selector "has(a": at column 6: expected \')\''],
    [doc('ingress: [{action: allow, ports: [80]}]\n'), 'document 1 (name: web): ingress[0].ports: ports need protocol tcp or udp'],
    [doc('ingress: [{action: allow, protocol: icmp, ports: [80]}]\n'), 'document 1 (name: web): ingress[0].ports: ports need protocol tcp or udp'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: []}]\n'), 'document 1 (name: web): ingress[0].ports: empty (leave ports out to match every port)'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: 80}]\n'), 'document 1 (name: web): ingress[0].ports: expected a list, found 80'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: [80, "80-70"]}]\n'), 'document 1 (name: web): ingress[0].ports[1]: "80-70" is not a port range'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: [0]}]\n'), 'document 1 (name: web): ingress[0].ports[0]: 0 is not a port (1-65535)'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: [65536]}]\n'), 'document 1 (name: web): ingress[0].ports[0]: 65536 is not a port (1-65535)'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: [8.5]}]\n'), 'document 1 (name: web): ingress[0].ports[0]: 8.5 is not a port (1-65535)'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: ["1-70000"]}]\n'), 'document 1 (name: web): ingress[0].ports[0]: "1-70000" is not a port range'],
    [doc('ingress: [{action: allow, protocol: tcp, ports: [http]}]\n'), 'document 1 (name: web): ingress[0].ports[0]: "http" is not a port or a range like "8000-8100"'],
    [doc('ingress: [{action: allow, fromNets: []}]\n'), 'document 1 (name: web): ingress[0].fromNets: empty (leave it out to match every address)'],
    [doc('ingress: [{action: allow, fromNets: [10.0.0.1]}]\n'), 'document 1 (name: web): ingress[0].fromNets[0]: "10.0.0.1" is not a CIDR like "192.0.2.0/24" or "2001:db8::/32"'],
    [doc('egress: [{action: allow, toNets: ["2001:db8::/129"]}]\n'), 'document 1 (name: web): egress[0].toNets[0]: "2001:db8::/129" is not a CIDR'],
    [doc('egress: [{action: allow, toNets: [10.0.0.0/33]}]\n'), 'document 1 (name: web): egress[0].toNets[0]: "10.0.0.0/33" is not a CIDR'],
    [
      doc('egress: [{action: allow, toNets: ["2001:DB8::/32"]}]\n'),
      'document 1 (name: web): egress[0].toNets[0]: "2001:DB8::/32" is not a network address (did you mean "2001:db8::/32"?)',
    ],
    [
      doc('egress: [{action: allow, toNets: ["2001:db8::1/32"]}]\n'),
      'document 1 (name: web): egress[0].toNets[0]: "2001:db8::1/32" is not a network address (did you mean "2001:db8::/32"?)',
    ],
    [
      doc('egress: [{action: allow, toNets: [192.0.2.1/24]}]\n'),
      'document 1 (name: web): egress[0].toNets[0]: "192.0.2.1/24" is not a network address (did you mean "192.0.2.0/24"?)',
    ],
    [doc('ingress: []\n---\n') + doc('egress: []\n'), 'document 2 (name: web): name: already used by document 1'],
  ])('refuses %j', (text, message) => {
    expect(() => parsePolicies(text)).toThrow(PolicyError);
    expect(() => parsePolicies(text)).toThrow(message);
  });

  it('names the document by its position in the stream, counting empty ones, and its name', () => {
    const text = `${doc('ingress: []\n')}---\n---\nkind: NetworkPolicy\nname: web-from-client\nselector: all()\ningress: [{action: allow, protocol: tcp, ports: [80, "80-70"]}]\n`;
    expect(() => parsePolicies(text)).toThrow('document 3 (name: web-from-client): ingress[0].ports[1]: "80-70" is not a port range (first <= last, both 1-65535)');
  });
});
