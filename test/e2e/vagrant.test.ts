// The Vagrant demo cannot boot VMs here, but its Vagrantfile must load and validate, and every
// script it provisions with must exist: they are the ones the local demo runs.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const repo = path.resolve(__dirname, '../..');

describe('the Vagrant demo', () => {
  it('passes vagrant validate', () => {
    const out = execFileSync('vagrant', ['validate', '--ignore-provider'], { cwd: repo, encoding: 'utf8', timeout: 120_000 });
    expect(out).toContain('Vagrantfile validated successfully.');
  });

  it('provisions with scripts of this repository that the local demo shares', () => {
    const provision = readFileSync(path.join(repo, 'vagrant/provision.sh'), 'utf8');
    const used = [...provision.matchAll(/\$REPO\/([\w./-]+)/g)].map((m) => m[1]!);
    expect(used).toEqual(expect.arrayContaining(['scripts/install-deps.sh', 'scripts/busybox-image.sh', 'vagrant/etcd.sh', 'vagrant/sluice-agent.service']));
    // .vagrant/ is written while provisioning (the etcd PKI); every other file must be in the repository.
    for (const file of used.filter((f) => !f.startsWith('.vagrant/'))) expect(existsSync(path.join(repo, file))).toBe(true);
    expect(readFileSync(path.join(repo, 'scripts/demo.sh'), 'utf8')).toContain('demo-lib.sh');
    expect(readFileSync(path.join(repo, 'vagrant/demo.sh'), 'utf8')).toContain('scripts/demo-lib.sh');
  });
});
