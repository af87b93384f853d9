/**
 * Integration tests change links, routes and firewall rules of the network
 * namespace they run in. This guard makes them refuse (throw at load) unless
 * that namespace is the throwaway one scripts/in-netns.sh made:
 *
 *   bash scripts/in-netns.sh npx jest --selectProjects integration
 */
import { readlinkSync, statSync } from 'node:fs';

export function assertThrowawayNetns(): void {
  const self = readlinkSync('/proc/self/ns/net');
  let init: string | undefined;
  try {
    init = readlinkSync('/proc/1/ns/net');
  } catch {
    // Not readable without CAP_SYS_PTRACE on some hosts; the check below suffices.
  }
  if (init === self) refuse("this process is in the machine's own network namespace");
  const name = process.env.SLUICE_IT_NETNS;
  if (name === undefined || !name.startsWith('sluice-it-')) refuse('SLUICE_IT_NETNS is not set');
  let created: string;
  try {
    created = `net:[${statSync(`/run/netns/${name}`).ino}]`;
  } catch {
    return refuse(`/run/netns/${name} does not exist`);
  }
  if (created !== self) refuse(`this process is in ${self}, not in ${name} (${created})`);
}

function refuse(reason: string): never {
  throw new Error(`refusing to change the kernel: ${reason}. Run: bash scripts/in-netns.sh npx jest --selectProjects integration`);
}
