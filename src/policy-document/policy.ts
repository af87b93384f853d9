/**
 * The policy document model: YAML text in, validated Policy values out, and
 * back to YAML for display. Every document of a stream is validated before any
 * is returned, so `sluice policy apply` applies all or nothing. An error names
 * the document (1-based, counting every `---`-separated document), the field
 * path and the problem, e.g.
 * `document 2 (name: web-from-client): ingress[0].ports[1]: "80-70" is not a port range`.
 *
 * A Policy is the document itself in canonical form (selectors in canonical
 * text, order filled in, ports as numbers or "first-last"), plain data so the
 * store can keep it as JSON; and since JSON is YAML, parsePolicies() reads that
 * JSON back to an equal policy.
 *
 * One file: the document's types beside the validator of each field, so a
 * field and its check change together.
 */
import { type Document, Lexer, Parser, parseAllDocuments, stringify } from 'yaml';
import { PolicyError } from '../errors';
import { DOCKER_NETWORK_NAME } from '../model';
import { formatCidr, parseCidr } from '../net/ip';
import { parseSelector } from './selector';

export const POLICY_KIND = 'NetworkPolicy';

/**
 * Order of a policy that names none. Lower runs first; leaving room on both
 * sides lets a policy go before or after the unordered ones.
 */
export const DEFAULT_ORDER = 1000;

export type RuleAction = 'allow' | 'deny';
export type RuleProtocol = 'tcp' | 'udp' | 'icmp';

/** A destination port, or an inclusive range "first-last" with first < last. */
export type PortSpec = number | string;

interface RuleCommon {
  action: RuleAction;
  /** Undefined: any protocol. */
  protocol?: RuleProtocol;
  /** Destination ports; only with tcp or udp. Undefined: any port. */
  ports?: PortSpec[];
}

/**
 * Traffic into a selected endpoint. With neither `from` nor `fromNets` the
 * rule matches every source, inside Sluice or not; with both, a source must
 * match both.
 */
export interface IngressRule extends RuleCommon {
  /** Selector (canonical text) of source endpoints, on any host. */
  from?: string;
  /** Source IPv4 CIDRs, network addresses only. */
  fromNets?: string[];
}

/** Traffic out of a selected endpoint; `to`/`toNets` as `from`/`fromNets` in IngressRule. */
export interface EgressRule extends RuleCommon {
  to?: string;
  toNets?: string[];
}

export interface Policy {
  kind: typeof POLICY_KIND;
  name: string;
  /** Only endpoints of the network with this name; undefined for every sluice network. */
  network?: string;
  /** Selector (canonical text) of the endpoints the policy applies to. */
  selector: string;
  /** Lower first; equal orders go by name. */
  order: number;
  /**
   * Undefined: the policy leaves ingress alone. A list, even an empty one:
   * ingress of every endpoint it selects is default-deny, and only what an
   * allow rule matches gets in (so `ingress: []` denies all ingress).
   */
  ingress?: IngressRule[];
  egress?: EgressRule[];
}

/**
 * Limits, so no policy costs every agent more than milliseconds per apply and
 * no input can exhaust memory or the stack. Each is ten times or more what a
 * real policy uses: a policy is a few hundred bytes with a handful of rules.
 * Selectors have their own (MAX_SELECTOR_LENGTH, MAX_SELECTOR_DEPTH).
 */
export const POLICY_LIMITS = {
  /** A `sluice policy apply` file (or a stored value): checked before the YAML is parsed. */
  fileBytes: 256 * 1024,
  /** One policy as stored (its canonical YAML, as `sluice policy get` prints it); etcd takes at most 1.5 MiB per request. */
  policyBytes: 64 * 1024,
  rulesPerDirection: 100,
  /** Every 15 ports (a range counting two) is one more iptables rule. */
  portsPerRule: 64,
  /** Nodes YAML aliases may expand to: an alias bomb (a billion laughs) is refused, not expanded. */
  aliasExpansions: 100,
  /** Nested YAML collections (a policy uses 5): yaml's composer recurses, and deep enough input kills the process. */
  yamlDepth: 32,
};

const KIB = 1024;

/** Parses and validates one or more YAML (or JSON) documents; throws PolicyError at the first problem. */
export function parsePolicies(text: string): Policy[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > POLICY_LIMITS.fileBytes) {
    throw new PolicyError(
      `policy text of ${Math.ceil(bytes / KIB)} KiB: over the limit of ${POLICY_LIMITS.fileBytes / KIB} KiB per file: split it into several files`,
    );
  }
  checkYamlDepth(text);
  const policies: { policy: Policy; index: number }[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const index = i + 1;
    const problem = [...doc.errors, ...doc.warnings][0];
    if (problem !== undefined) {
      // A plain scalar starting with '!' is a YAML tag: the usual trap with `selector: !has(x)`.
      const hint = problem.code === 'TAG_RESOLVE_FAILED' ? " (quote values that start with '!')" : '';
      throw new PolicyError(`document ${index}: invalid YAML: ${firstLine(problem.message)}${hint}`);
    }
    const value = toJS(doc, index);
    // An empty document, such as the one after a trailing `---`, holds nothing to apply.
    if (value === null || value === undefined) return;
    const policy = validatePolicy(value, index);
    const stored = Buffer.byteLength(policyToYaml(policy));
    if (stored > POLICY_LIMITS.policyBytes) {
      throw new PolicyError(
        `document ${index} (name: ${policy.name}): ${Math.ceil(stored / KIB)} KiB as stored: over the limit of ${POLICY_LIMITS.policyBytes / KIB} KiB per policy`,
      );
    }
    const earlier = policies.find((p) => p.policy.name === policy.name);
    if (earlier !== undefined) {
      throw new PolicyError(`document ${index} (name: ${policy.name}): name: already used by document ${earlier.index}`);
    }
    policies.push({ policy, index });
  });
  if (policies.length === 0) throw new PolicyError(`no policy found: expected a YAML document with kind: ${POLICY_KIND}`);
  return policies.map((p) => p.policy);
}

/** The YAML document of a policy, for `sluice policy get`; parsePolicies() reads it back to an equal policy. */
export function policyToYaml(policy: Policy): string {
  // Fields in the order the documentation writes them; yaml leaves out entries whose value is undefined.
  return stringify({
    kind: policy.kind,
    name: policy.name,
    network: policy.network,
    selector: policy.selector,
    order: policy.order,
    ingress: policy.ingress?.map((r) => ({ action: r.action, protocol: r.protocol, from: r.from, fromNets: r.fromNets, ports: r.ports })),
    egress: policy.egress?.map((r) => ({ action: r.action, protocol: r.protocol, to: r.to, toNets: r.toNets, ports: r.ports })),
  });
}

/**
 * Refuses text nested deeper than POLICY_LIMITS.yamlDepth before the composer
 * recurses into it: yaml's CST parser keeps its nesting in an array, not on
 * the call stack, so measuring it cannot overflow.
 */
function checkYamlDepth(text: string): void {
  const parser = new Parser();
  for (const lexeme of new Lexer().lex(text)) {
    // Finished documents come out of next() and are dropped: only the depth is of interest.
    Array.from(parser.next(lexeme));
    if (parser.stack.length > POLICY_LIMITS.yamlDepth) {
      throw new PolicyError(`policy text nests deeper than the limit of ${POLICY_LIMITS.yamlDepth} levels of YAML collections`);
    }
  }
}

function toJS(doc: Document, index: number): unknown {
  try {
    return doc.toJS({ maxAliasCount: POLICY_LIMITS.aliasExpansions });
  } catch (err) {
    // yaml throws ReferenceError when aliases expand past maxAliasCount.
    if (err instanceof ReferenceError) {
      throw new PolicyError(`document ${index}: YAML aliases expand to more than ${POLICY_LIMITS.aliasExpansions} nodes: refused (an alias bomb?)`);
    }
    throw err;
  }
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/:$/, '');
}

// ---- validation ----

/** DNS-label-like, so a name is safe in messages, rule comments and store keys. */
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const MAX_NAME = 63;
const POLICY_FIELDS = ['kind', 'name', 'network', 'selector', 'order', 'ingress', 'egress'];
const INGRESS_FIELDS = ['action', 'protocol', 'from', 'fromNets', 'ports'];
const EGRESS_FIELDS = ['action', 'protocol', 'to', 'toNets', 'ports'];
const ACTIONS: readonly RuleAction[] = ['allow', 'deny'];
const PROTOCOLS: readonly RuleProtocol[] = ['tcp', 'udp', 'icmp'];

function isName(text: string): boolean {
  return NAME.test(text) && text.length <= MAX_NAME;
}

/** Where in which document a problem is; builds the error message. */
class Context {
  constructor(
    private readonly index: number,
    private readonly name: string | undefined,
  ) {}

  error(path: string, problem: string): PolicyError {
    const doc = this.name === undefined ? `document ${this.index}` : `document ${this.index} (name: ${this.name})`;
    return new PolicyError(`${doc}: ${path === '' ? '' : `${path}: `}${problem}`);
  }
}

type Fields = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // JSON would print .inf and .nan as null.
  return typeof value === 'number' ? String(value) : JSON.stringify(value);
}

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mapping(value: unknown, allowed: readonly string[], ctx: Context, path: string): Fields {
  if (!isFields(value)) throw ctx.error(path, `expected a mapping, found ${describe(value)}`);
  const unknown = Object.keys(value).find((k) => !allowed.includes(k));
  if (unknown !== undefined) {
    throw ctx.error(path, `unknown field ${JSON.stringify(unknown)} (allowed: ${allowed.join(', ')})`);
  }
  return value;
}

function list(value: unknown, ctx: Context, path: string): unknown[] {
  if (!Array.isArray(value)) throw ctx.error(path, `expected a list, found ${describe(value)}`);
  return value;
}

function limited(value: unknown, max: number, what: string, ctx: Context, path: string): unknown[] {
  const items = list(value, ctx, path);
  if (items.length > max) throw ctx.error(path, `${items.length} ${what}: over the limit of ${max}`);
  return items;
}

function string(value: unknown, ctx: Context, path: string): string {
  if (typeof value !== 'string') throw ctx.error(path, `expected a string, found ${describe(value)}`);
  return value;
}

function oneOf<T extends string>(value: unknown, options: readonly T[], ctx: Context, path: string): T {
  const found = options.find((o) => o === value);
  if (found === undefined) throw ctx.error(path, `${describe(value)} is not one of ${options.join(', ')}`);
  return found;
}

function selector(value: unknown, ctx: Context, path: string): string {
  const text = string(value, ctx, path);
  try {
    return parseSelector(text).toString();
  } catch (err) {
    throw err instanceof PolicyError ? ctx.error(path, err.message) : err;
  }
}

function validatePolicy(value: unknown, index: number): Policy {
  // A valid name goes into every message, even those about fields checked before it.
  const rawName = isFields(value) ? value.name : undefined;
  const ctx = new Context(index, typeof rawName === 'string' && isName(rawName) ? rawName : undefined);
  if (!isFields(value)) throw ctx.error('', `expected a mapping with kind: ${POLICY_KIND}, found ${describe(value)}`);
  // Kind first: a document of some other kind should be told so, not that it lacks our fields.
  if (value.kind !== POLICY_KIND) {
    const kind = value.kind;
    throw ctx.error('kind', kind === undefined ? `missing (expected ${POLICY_KIND})` : `${describe(kind)} is not ${POLICY_KIND}`);
  }
  const fields = mapping(value, POLICY_FIELDS, ctx, '');
  if (rawName === undefined) throw ctx.error('name', 'missing');
  const name = string(rawName, ctx, 'name');
  if (!isName(name)) {
    throw ctx.error(
      'name',
      `${describe(name)} is not a valid name (lower-case letters, digits and '-', at most ${MAX_NAME} characters, starting and ending with a letter or digit)`,
    );
  }
  if (fields.selector === undefined) throw ctx.error('selector', 'missing');
  const policy: Policy = {
    kind: POLICY_KIND,
    name,
    selector: selector(fields.selector, ctx, 'selector'),
    order: fields.order === undefined ? DEFAULT_ORDER : order(fields.order, ctx),
  };
  if (fields.network !== undefined) policy.network = networkName(fields.network, ctx);
  if (fields.ingress === undefined && fields.egress === undefined) {
    throw ctx.error('', 'needs ingress or egress (an empty list denies all traffic in that direction)');
  }
  if (fields.ingress !== undefined) {
    policy.ingress = limited(fields.ingress, POLICY_LIMITS.rulesPerDirection, 'rules', ctx, 'ingress').map((r, i) =>
      ingressRule(r, ctx, `ingress[${i}]`),
    );
  }
  if (fields.egress !== undefined) {
    policy.egress = limited(fields.egress, POLICY_LIMITS.rulesPerDirection, 'rules', ctx, 'egress').map((r, i) =>
      egressRule(r, ctx, `egress[${i}]`),
    );
  }
  return policy;
}

function networkName(value: unknown, ctx: Context): string {
  const network = string(value, ctx, 'network');
  if (!DOCKER_NETWORK_NAME.test(network)) throw ctx.error('network', `${describe(network)} is not a valid network name`);
  return network;
}

function order(value: unknown, ctx: Context): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw ctx.error('order', `expected a number, found ${describe(value)}`);
  }
  return value;
}

function ingressRule(value: unknown, ctx: Context, path: string): IngressRule {
  const fields = mapping(value, INGRESS_FIELDS, ctx, path);
  const rule: IngressRule = common(fields, ctx, path);
  if (fields.from !== undefined) rule.from = selector(fields.from, ctx, `${path}.from`);
  if (fields.fromNets !== undefined) rule.fromNets = cidrs(fields.fromNets, ctx, `${path}.fromNets`);
  return rule;
}

function egressRule(value: unknown, ctx: Context, path: string): EgressRule {
  const fields = mapping(value, EGRESS_FIELDS, ctx, path);
  const rule: EgressRule = common(fields, ctx, path);
  if (fields.to !== undefined) rule.to = selector(fields.to, ctx, `${path}.to`);
  if (fields.toNets !== undefined) rule.toNets = cidrs(fields.toNets, ctx, `${path}.toNets`);
  return rule;
}

function common(fields: Fields, ctx: Context, path: string): RuleCommon {
  if (fields.action === undefined) throw ctx.error(`${path}.action`, 'missing (allow or deny)');
  const rule: RuleCommon = { action: oneOf(fields.action, ACTIONS, ctx, `${path}.action`) };
  if (fields.protocol !== undefined) rule.protocol = oneOf(fields.protocol, PROTOCOLS, ctx, `${path}.protocol`);
  if (fields.ports !== undefined) {
    if (rule.protocol !== 'tcp' && rule.protocol !== 'udp') {
      throw ctx.error(`${path}.ports`, 'ports need protocol tcp or udp');
    }
    const ports = limited(fields.ports, POLICY_LIMITS.portsPerRule, 'ports', ctx, `${path}.ports`);
    if (ports.length === 0) throw ctx.error(`${path}.ports`, 'empty (leave ports out to match every port)');
    rule.ports = ports.map((p, i) => port(p, ctx, `${path}.ports[${i}]`));
  }
  return rule;
}

const PORT_TEXT = /^([1-9]\d{0,4})(?:-([1-9]\d{0,4}))?$/;

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** A number, or "first-last"; "80" and "80-80" become 80 so equal rules look equal. */
function port(value: unknown, ctx: Context, path: string): PortSpec {
  if (typeof value === 'number') {
    if (!isPort(value)) throw ctx.error(path, `${describe(value)} is not a port (1-65535)`);
    return value;
  }
  const match = typeof value === 'string' ? PORT_TEXT.exec(value) : null;
  if (match === null) throw ctx.error(path, `${describe(value)} is not a port or a range like "8000-8100"`);
  const first = Number(match[1]);
  const last = match[2] === undefined ? first : Number(match[2]);
  if (!isPort(first) || !isPort(last) || first > last) {
    throw ctx.error(path, `${describe(value)} is not a port range (first <= last, both 1-65535)`);
  }
  return first === last ? first : `${first}-${last}`;
}

function cidrs(value: unknown, ctx: Context, path: string): string[] {
  const items = list(value, ctx, path);
  if (items.length === 0) throw ctx.error(path, 'empty (leave it out to match every address)');
  return items.map((item, i) => cidr(item, ctx, `${path}[${i}]`));
}

/** IPv4 or IPv6 (canonical, RFC 5952), with the host bits zero, so a typo is refused rather than silently widened. */
function cidr(value: unknown, ctx: Context, path: string): string {
  const text = string(value, ctx, path);
  const parsed = parseCidr(text);
  if (parsed === undefined) throw ctx.error(path, `${describe(text)} is not a CIDR like "192.0.2.0/24" or "2001:db8::/32"`);
  const canonical = formatCidr(parsed);
  if (canonical !== text) throw ctx.error(path, `${describe(text)} is not a network address (did you mean "${canonical}"?)`);
  return text;
}
