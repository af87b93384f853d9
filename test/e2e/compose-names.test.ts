// docker-compose projects on two hosts, on one external sluice network: a service finds a
// service of the other host's project by its service name, the alias compose gives each
// container. The other host's dockerd has no such container, so only Sluice can answer.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { eventually } from '../helpers/eventually';
import { LAB_DNS_ADDRESS, Lab, TEST_IMAGE } from '../helpers/lab';
import { fetchFrom, lookup } from '../helpers/probe';

jest.setTimeout(600_000);

/** A compose file of one service on the external network `appnet`. */
function composeFile(service: string, command: string): string {
  return [
    "version: '3.8'",
    'services:',
    `  ${service}:`,
    `    image: ${TEST_IMAGE}`,
    '    init: true',
    `    command: ${command}`,
    'networks:',
    '  default:',
    '    external: true',
    '    name: appnet',
    '',
  ].join('\n');
}

describe('docker-compose services on two hosts', () => {
  let lab: Lab;
  let dir: string;

  /** `docker-compose up -d` of a project on a host's dockerd. */
  async function composeUp(host: string, project: string, file: string): Promise<void> {
    const yml = path.join(dir, `${project}.yml`);
    writeFileSync(yml, file);
    await promisify(execFile)('docker-compose', ['-p', project, '-f', yml, 'up', '-d'], {
      env: { ...process.env, DOCKER_HOST: lab.dockerHost(host) },
      timeout: 120_000,
    });
  }

  beforeAll(async () => {
    lab = await Lab.up({ name: 'compose', hosts: 2 });
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-compose-'));
    for (const h of lab.hosts) {
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', 'appnet');
    }
    await composeUp('h1', 'front', composeFile('web', 'httpd -f -p 80 -h /www'));
    await composeUp('h2', 'back', composeFile('client', 'sleep 3600'));
  });
  afterAll(async () => {
    await lab?.down();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('resolves a service of the other host by its service name, through Sluice, and fetches its page', async () => {
    const web = await lab.containerIp('h1', 'front_web_1', 'appnet');
    // Through h2's dockerd (its embedded DNS forwards what it does not know) and asked of Sluice directly.
    await eventually(
      async () =>
        expect({ viaDocker: await lookup(lab, 'h2', 'back_client_1', 'web'), viaSluice: await lookup(lab, 'h2', 'back_client_1', 'web', LAB_DNS_ADDRESS) }).toEqual({
          viaDocker: [web],
          viaSluice: [web],
        }),
      20_000,
      250,
    );
    expect(await fetchFrom(lab, 'h2', 'back_client_1', 'web', 80, 5)).toEqual({ reach: 'ok', page: 'hello from h1\n' });
    // h2's dockerd has no `web` of its own to answer with.
    expect((await lab.dockerOk('h2', 'ps', '--format', '{{.Names}}')).split('\n')).toEqual(['back_client_1']);
  });
});
