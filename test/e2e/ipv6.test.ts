// Dual-stack sluice networks on real Docker: IPv6 addresses from sluice IPAM on
// every host, IPv6 across hosts by host-gw and by VXLAN, the same policy over
// IPv6 as over IPv4, and nothing of IPv6 left behind.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Lab, TEST_IMAGE } from '../helpers/lab';
import { eventually as retry } from '../helpers/eventually';
import { connects, pings } from '../helpers/probe';
import { WEB_FROM_CLIENT } from '../helpers/policies';

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 20_000) => retry(check, timeoutMs, 250);
const NET = 'appnet';
const CREATE = ['network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--ipv6', '--subnet', '10.96.0.0/16', '--subnet', 'fd00:96::/64', NET];

/** An IPv6 address as a URL host. */
const bracketed = (address: string): string => `[${address}]`;

async function ipv6Of(lab: Lab, host: string, container: string): Promise<string> {
  return lab.dockerOk(host, 'inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").GlobalIPv6Address}}`, container);
}

/** A web server on 80, labelled `labels`. */
async function web(lab: Lab, host: string, name: string, ...labels: string[]): Promise<string> {
  await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...labels.flatMap((l) => ['--label', l]), TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www');
  return ipv6Of(lab, host, name);
}

async function box(lab: Lab, host: string, name: string, ...args: string[]): Promise<string> {
  await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, ...args, TEST_IMAGE, 'sleep', '3600');
  return ipv6Of(lab, host, name);
}

/** Ping and a page fetch over IPv6, both ways of asking "can it reach it". */
async function reach(lab: Lab, host: string, container: string, address: string): Promise<{ ping: string; http: string }> {
  return { ping: await pings(lab, host, container, address, { timeoutS: 2 }), http: await connects(lab, host, container, bracketed(address)) };
}

describe('a dual-stack network on three hosts sharing a link (host-gw)', () => {
  let lab: Lab;
  let dir: string;
  const v6: Record<string, string> = {};
  const apply = (yaml: string) => {
    const file = path.join(dir, `policy-${Date.now()}.yaml`);
    writeFileSync(file, yaml);
    return lab.sluiceOk('h1', 'policy', 'apply', '-f', file);
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-ipv6-'));
    lab = await Lab.up({ name: 'ipv6', hosts: 3 });
    for (const h of ['h1', 'h2', 'h3']) await lab.dockerOk(h, ...CREATE);
    v6.web2 = await web(lab, 'h2', 'web2', 'role=web');
    v6.web3 = await web(lab, 'h3', 'web3');
    v6.client = await box(lab, 'h1', 'client', '--label', 'role=client');
    v6.other = await box(lab, 'h1', 'other', '--label', 'role=other');
  });
  afterAll(async () => {
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives every container an IPv6 address from the pool and the virtual IPv6 gateway, the same on every host', async () => {
    expect(Object.values(v6).every((a) => /^fd00:96::[0-9a-f]+$/.test(a))).toBe(true);
    expect(new Set(Object.values(v6)).size).toBe(4);
    const gateways = await Promise.all(
      [['h1', 'client'], ['h3', 'web3']].map(([h, c]) => lab.dockerOk(h!, 'inspect', '-f', `{{(index .NetworkSettings.Networks "${NET}").IPv6Gateway}}`, c!)),
    );
    expect(gateways).toEqual(['fd00:96::1', 'fd00:96::1']);
    expect(await pings(lab, 'h1', 'client', 'fd00:96::1')).toBe('ok');
  });

  it('carries ping6 and HTTP over IPv6 to containers on the other hosts, by host-gw routes via their IPv6 underlay', async () => {
    expect(await reach(lab, 'h1', 'client', v6.web3!)).toEqual({ ping: 'ok', http: 'ok' });
    expect(await reach(lab, 'h3', 'web3', v6.client!)).toMatchObject({ ping: 'ok' });
    const routes = await lab.execOk('h1', ['ip', '-6', 'route', 'show', 'proto', '252']);
    expect(routes).toContain(`via ${await lab.hostIp6('h3')}`);
  });

  it('answers the IPv6 address of a container on another host by name (AAAA)', async () => {
    const r = await lab.docker('h1', 'exec', 'client', 'nslookup', '-type=AAAA', 'web3');
    expect(r.stdout).toContain(`Address: ${v6.web3}`);
  });

  it('enforces the same policy over IPv6: the client reaches the web server, another container does not, on either family', async () => {
    await apply(WEB_FROM_CLIENT);
    const v4 = { web2: await lab.containerIp('h2', 'web2') };
    await eventually(async () => {
      expect({
        'client, IPv6': await connects(lab, 'h1', 'client', bracketed(v6.web2!)),
        'client, IPv4': await connects(lab, 'h1', 'client', v4.web2),
        'other, IPv6': await connects(lab, 'h1', 'other', bracketed(v6.web2!)),
        'other, IPv4': await connects(lab, 'h1', 'other', v4.web2),
        'other, ping6 (no rule allows icmp)': await pings(lab, 'h1', 'other', v6.web2!),
      }).toEqual({ 'client, IPv6': 'ok', 'client, IPv4': 'ok', 'other, IPv6': 'timed out', 'other, IPv4': 'timed out', 'other, ping6 (no rule allows icmp)': 'timed out' });
    });
    // Unselected by the policy, web3 keeps the default: the other container reaches it.
    expect(await connects(lab, 'h1', 'other', bracketed(v6.web3!))).toBe('ok');
  });

  it('drops what a container sends from another container\'s IPv6 address', async () => {
    await box(lab, 'h1', 'spoofer', '--cap-add', 'NET_ADMIN');
    await lab.dockerOk('h1', 'exec', 'spoofer', 'ip', '-6', 'addr', 'add', `${v6.other}/128`, 'dev', 'eth0');
    const own = await ipv6Of(lab, 'h1', 'spoofer');
    const ping = (from: string) => lab.docker('h1', 'exec', 'spoofer', 'ping', '-c1', '-W2', '-I', from, v6.web3!);
    // From its own address it reaches web3 (no policy selects either): the positive control.
    expect(await ping(own)).toMatchObject({ code: 0 });
    // From the other container's (once the kernel no longer holds it tentative): sent, never answered.
    await eventually(async () => expect((await ping(v6.other!)).stdout).toContain('1 packets transmitted, 0 packets received'));
  });

  it('leaves no IPv6 route, neighbour proxy or set member of a container once it is gone, and none of the network after network rm', async () => {
    const veth = (await lab.execOk('h1', ['ip', '-6', 'route', 'show', `${v6.other}/128`])).split(' dev ')[1]?.split(' ')[0];
    expect(veth).toMatch(/^slv/);
    await lab.dockerOk('h1', 'rm', '-f', 'other', 'spoofer');
    await eventually(async () => {
      expect(await lab.execOk('h1', ['ip', '-6', 'route', 'show', `${v6.other}/128`])).toBe('');
      expect(await lab.execOk('h1', ['ip', '-6', 'neigh', 'show', 'proxy', 'dev', veth!]).catch(() => '')).toBe('');
      expect(await lab.execOk('h1', ['ipset', 'list', 'sluice6local'])).not.toContain(v6.other!);
    });
    for (const h of ['h1', 'h2', 'h3']) await lab.dockerOk(h, 'rm', '-f', ...(await lab.dockerOk(h, 'ps', '-aq')).split('\n').filter(Boolean));
    for (const h of ['h1', 'h2', 'h3']) await lab.dockerOk(h, 'network', 'rm', NET);
    await eventually(async () => {
      for (const h of ['h1', 'h2', 'h3']) {
        expect({ h, routes: await lab.execOk(h, ['ip', '-6', 'route', 'show', 'proto', '252']) }).toEqual({ h, routes: '' });
      }
    });
    expect((await lab.sluiceOk('h1', 'status', '-o', 'json')).includes('fd00:96::')).toBe(false);
  });
});

describe('a dual-stack network across a router (VXLAN)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await Lab.up({ name: 'ipv6vx', hosts: 2, topology: 'routed' });
    for (const h of ['h1', 'h2']) await lab.dockerOk(h, ...CREATE);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('carries ping6 and HTTP over IPv6 through the VXLAN tunnel, both ways', async () => {
    const server = await web(lab, 'h2', 'web');
    const client = await box(lab, 'h1', 'client');
    expect(await reach(lab, 'h1', 'client', server)).toEqual({ ping: 'ok', http: 'ok' });
    expect(await pings(lab, 'h2', 'web', client)).toBe('ok');
    expect(await lab.execOk('h1', ['ip', '-6', 'route', 'show', 'proto', '252'])).toMatch(/fd00:96::[0-9a-f]*\/122 via fe80::[0-9a-f:]+ dev sluice\.vxlan/);
  });
});
