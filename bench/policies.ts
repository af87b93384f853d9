// Policy files for `sluice policy apply`, written where the hosts can read them.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { Lab } from '../test/helpers/lab';
import { nowMs } from './proc';

export interface PolicyDoc {
  name: string;
  selector: string;
  ingress?: object[];
  egress?: object[];
}

/** Writes the documents as one YAML stream; returns the file's path. */
export function writePolicies(dir: string, file: string, docs: readonly PolicyDoc[]): string {
  const target = path.join(dir, file);
  writeFileSync(target, docs.map((doc) => stringify({ kind: 'NetworkPolicy', ...doc })).join('---\n'));
  return target;
}

/** `sluice policy apply -f FILE` on h1; resolves with the time the CLI returned. */
export async function applyPolicies(lab: Lab, file: string): Promise<number> {
  const r = await lab.sluice('h1', 'policy', 'apply', '-f', file);
  const returned = nowMs();
  if (r.code !== 0) throw new Error(`sluice policy apply -f ${file}: ${(r.stderr || r.stdout).trim()}`);
  return returned;
}

/** Removes policies with `sluice policy rm`, ignoring those already gone. */
export async function removePolicies(lab: Lab, names: readonly string[]): Promise<void> {
  for (const name of names) await lab.sluice('h1', 'policy', 'rm', name);
}
