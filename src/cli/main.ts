/**
 * `sluice` command line: argv → command → one line of output or one clear
 * error line and a non-zero exit. No business logic here.
 */
import { parseArgs } from 'node:util';
import { AGENT_FLAGS, agentHelp, envName, loadAgentConfig, loadStoreSettings, STORE_FLAGS } from '../config';
import { BadRequestError, errorMessage, SluiceError } from '../errors';
import { runAgent } from '../main';
import { DEFAULT_STORE_URL, openStore } from '../store/open-store';
import { Registry } from '../store/registry';
import { VERSION } from '../agent/liveness';
import type { Packet } from '../policy/explain';
import { MAX_PORT, PROTOCOLS } from '../policy/verdict';
import * as commands from './commands';

const USAGE = `Usage: sluice COMMAND

Docker networks across hosts, with label-based policy.

Commands:
  agent [flags]                              run this host's plugin (sluice agent --help)
  status                                     nodes (with versions), networks and endpoints of the cluster
  network create NAME --subnet CIDR [--block-size N]
                                             define a network once; every agent creates it in Docker
  network ls | network rm NAME
  policy apply -f FILE [--dry-run]           apply policies (YAML, several documents allowed);
                                             --dry-run writes nothing and lists the verdicts that would change
  policy ls | policy get NAME | policy rm NAME [--dry-run]
  policy explain FROM TO [--protocol tcp|udp|icmp] [--port N]
                                             whether FROM may reach TO (container names, IDs or
                                             addresses), and which policy rule or default decided
  node rm NAME [--force]                     decommission a dead node and release its blocks
  version

Every command but agent takes --store URL (env SLUICE_STORE; default ${DEFAULT_STORE_URL})
and, for a secured etcd, the agent's --etcd-ca, --etcd-cert, --etcd-key, --etcd-user and
--etcd-password-file (or their SLUICE_ETCD_* env vars; the password from SLUICE_ETCD_PASSWORD).
Read commands, explain and --dry-run take -o json for output a script can read.
`;

async function main(argv: string[]): Promise<string | undefined> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') return USAGE;
  if (command === 'version' || command === '--version') return VERSION;
  if (command === 'agent') {
    const { values } = parse(rest, { ...stringOptions(AGENT_FLAGS), help: { type: 'boolean' } });
    if (values.help) return agentHelp();
    await runAgent(loadAgentConfig(values as Record<string, string | undefined>));
    return undefined;
  }
  const { values, positionals } = parse(rest, {
    ...stringOptions(STORE_FLAGS),
    subnet: { type: 'string' },
    'block-size': { type: 'string' },
    file: { type: 'string', short: 'f' },
    force: { type: 'boolean' },
    'grace-period': { type: 'string' },
    output: { type: 'string', short: 'o' },
    'dry-run': { type: 'boolean' },
    protocol: { type: 'string' },
    port: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return USAGE;
  const settings = loadStoreSettings(values as Record<string, string | undefined>);
  const store = openStore(settings.store, settings.etcd);
  const registry = new Registry(store);
  const [sub, name, target] = positionals;
  const output = outputFormat(values.output as string | undefined);
  const write = { dryRun: values['dry-run'] === true, output };
  const need = (what: string | undefined, usage: string): string => {
    if (what === undefined) throw new BadRequestError(`usage: sluice ${usage}`);
    return what;
  };
  try {
    switch (`${command} ${sub ?? ''}`.trim()) {
      case 'status':
        return await commands.status(registry, output);
      case 'network create':
        return await commands.networkCreate(
          registry,
          need(name, 'network create NAME --subnet CIDR'),
          need(values.subnet as string | undefined, 'network create NAME --subnet CIDR'),
          Number((values['block-size'] as string | undefined) ?? '26'),
        );
      case 'network ls':
        return await commands.networkList(registry, output);
      case 'network rm':
        return await commands.networkRemove(registry, need(name, 'network rm NAME'));
      case 'policy apply':
        return await commands.policyApply(registry, need(values.file as string | undefined, 'policy apply -f FILE'), write);
      case 'policy ls':
        return await commands.policyList(registry, output);
      case 'policy get':
        return await commands.policyGet(registry, need(name, 'policy get NAME'), output);
      case 'policy rm':
        return await commands.policyRemove(registry, need(name, 'policy rm NAME'), write);
      case 'policy explain': {
        const usage = 'policy explain FROM TO [--protocol tcp|udp|icmp] [--port N]';
        const packet = explainPacket(values.protocol as string | undefined, values.port as string | undefined);
        return await commands.policyExplain(registry, need(name, usage), need(target, usage), packet, output);
      }
      case 'node rm':
        return await commands.nodeRemove(
          registry,
          need(name, 'node rm NAME'),
          Number((values['grace-period'] as string | undefined) ?? process.env[envName('grace-period')] ?? '86400'),
          values.force === true,
        );
      default:
        throw new BadRequestError(`unknown command "${[command, sub].filter(Boolean).join(' ')}": see sluice --help`);
    }
  } finally {
    await store.close();
  }
}

function outputFormat(text: string | undefined): commands.Output {
  if (text === undefined || text === 'text' || text === 'json') return text ?? 'text';
  throw new BadRequestError(`-o ${text}: expected json or text`);
}

/** The packet to explain: tcp unless told, and a port only for tcp and udp. */
function explainPacket(protocolText: string | undefined, portText: string | undefined): Packet {
  const protocol = PROTOCOLS.find((p) => p === (protocolText ?? 'tcp'));
  if (protocol === undefined) throw new BadRequestError(`--protocol ${protocolText}: expected ${PROTOCOLS.join(', ')}`);
  if (portText === undefined) return { protocol };
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > MAX_PORT) throw new BadRequestError(`--port ${portText}: expected a port, 1-${MAX_PORT}`);
  return { protocol, port };
}

function stringOptions(flags: { flag: string }[]): Options {
  return Object.fromEntries(flags.map((f) => [f.flag, { type: 'string' as const }]));
}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

function parse(args: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  if (args.some((arg) => /^--etcd-password(=|$)/.test(arg))) {
    throw new BadRequestError('no --etcd-password: every user of this host sees a command line; set SLUICE_ETCD_PASSWORD or --etcd-password-file FILE');
  }
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new BadRequestError(`${errorMessage(err)}: see sluice --help`);
  }
}

main(process.argv.slice(2)).then(
  (output) => {
    if (output !== undefined) process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
  },
  (err: unknown) => {
    const message = err instanceof SluiceError ? err.message : `internal error: ${errorMessage(err)}`;
    process.stderr.write(`sluice: ${message}\n`);
    process.exit(err instanceof SluiceError ? 2 : 1);
  },
);
