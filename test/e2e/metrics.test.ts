// The agents' metrics as an operator gets them: a real Prometheus server, in the lab's underlay
// namespace, scrapes two agents every second; its query API shows each agent's plugin requests,
// and the kernel counters of a policy's allow rule and of its default deny grow with real traffic.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { eventually as retry } from '../helpers/eventually';
import { LAB_METRICS_PORT, LAB_SCRIPT, Lab, TEST_IMAGE } from '../helpers/lab';
import { connects } from '../helpers/probe';
import { WEB_FROM_CLIENT } from '../helpers/policies';

/** contrib/grafana-sluice.json, found next to scripts/lab.sh. */
const DASHBOARD = path.join(path.dirname(LAB_SCRIPT), '..', 'contrib', 'grafana-sluice.json');

jest.setTimeout(600_000);

const eventually = (check: () => Promise<void>, timeoutMs = 30_000) => retry(check, timeoutMs, 500);
const NET = 'appnet';
const PROMETHEUS = '127.0.0.1:9090';

interface Result {
  metric: Record<string, string>;
  value: [number, string];
}

describe('Prometheus scraping the agents of two hosts', () => {
  let lab: Lab;
  let dir: string;
  let prometheusPid: number | undefined;
  const ip: Record<string, string> = {};
  const target: Record<string, string> = {};

  /** An instant query through Prometheus' HTTP API, run in the underlay namespace where it listens. */
  async function query(promql: string): Promise<Result[]> {
    const out = await lab.execOk('underlay', ['curl', '-sS', '--fail', '--get', '--data-urlencode', `query=${promql}`, `http://${PROMETHEUS}/api/v1/query`]);
    const reply = JSON.parse(out) as { status: string; data: { result: Result[] } };
    expect(reply.status).toBe('success');
    return reply.data.result;
  }

  /** The one value of `promql` for the agent of `host`; undefined while Prometheus has none. */
  async function valueOn(host: string, promql: string): Promise<number | undefined> {
    const results = (await query(promql)).filter((r) => r.metric.instance === target[host]);
    expect(results.length).toBeLessThanOrEqual(1);
    return results[0] === undefined ? undefined : Number(results[0].value[1]);
  }

  async function run(host: string, name: string, role: string, ...command: string[]): Promise<void> {
    await lab.dockerOk(host, 'run', '-d', '--init', '--name', name, '--net', NET, '--label', `role=${role}`, TEST_IMAGE, ...command);
    ip[name] = await lab.containerIp(host, name);
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sluice-metrics-'));
    lab = await Lab.up({ name: 'metrics', hosts: 2 });
    for (const h of lab.hosts) {
      target[h] = `${await lab.hostIp(h)}:${LAB_METRICS_PORT}`;
      await lab.dockerOk(h, 'network', 'create', '-d', 'sluice', '--ipam-driver', 'sluice', '--subnet', '10.96.0.0/16', NET);
    }
    await run('h2', 'web', 'web', 'httpd', '-f', '-p', '80', '-h', '/www');
    await run('h1', 'client', 'client', 'sleep', '3600');
    await run('h1', 'other', 'other', 'sleep', '3600');
    const policy = path.join(dir, 'policy.yaml');
    writeFileSync(policy, WEB_FROM_CLIENT);
    await lab.sluiceOk('h1', 'policy', 'apply', '-f', policy);

    const config = path.join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', scrape_timeout: '1s' },
        scrape_configs: [{ job_name: 'sluice', static_configs: [{ targets: Object.values(target) }] }],
      }),
    );
    const flags = `--config.file=${config} --storage.tsdb.path=${path.join(dir, 'data')} --web.listen-address=${PROMETHEUS}`;
    const pid = await lab.execOk('underlay', ['sh', '-c', `setsid prometheus ${flags} </dev/null >${path.join(dir, 'prometheus.log')} 2>&1 & echo $!`]);
    prometheusPid = Number(pid);
    await eventually(async () => {
      await lab.execOk('underlay', ['curl', '-sS', '--fail', `http://${PROMETHEUS}/-/ready`]);
    });
  });

  afterAll(async () => {
    if (prometheusPid) process.kill(prometheusPid, 'SIGTERM');
    await lab?.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('scrapes both agents and shows each one\'s plugin requests, endpoints and store', async () => {
    await eventually(async () => {
      for (const h of lab.hosts) {
        expect(await valueOn(h, 'up{job="sluice"}')).toBe(1);
        expect(await valueOn(h, 'sluice_plugin_requests_total{method="NetworkDriver.CreateEndpoint",outcome="ok"}')).toBeGreaterThanOrEqual(1);
        expect(await valueOn(h, 'sluice_plugin_requests_total{method="NetworkDriver.Join",outcome="ok"}')).toBeGreaterThanOrEqual(1);
        expect(await valueOn(h, 'sluice_endpoints{scope="cluster"}')).toBe(3);
        expect(await valueOn(h, 'sluice_store_up')).toBe(1);
        expect(await valueOn(h, 'sluice_dataplane_apply_duration_seconds_count')).toBeGreaterThan(0);
      }
      expect(await valueOn('h1', 'sluice_endpoints{scope="local"}')).toBe(2);
      expect(await valueOn('h2', 'sluice_endpoints{scope="local"}')).toBe(1);
    });
  });

  it('counts allowed packets on the policy\'s allow rule and denied ones on the default deny, where the policy applies', async () => {
    const allowRule = 'sluice_policy_rule_packets_total{policy="web-from-client",direction="ingress",rule="0",action="allow"}';
    const defaultDeny = 'sluice_policy_default_deny_packets_total{direction="ingress"}';
    let allowedBefore = NaN;
    let deniedBefore = NaN;
    await eventually(async () => {
      allowedBefore = (await valueOn('h2', allowRule))!;
      deniedBefore = (await valueOn('h2', defaultDeny))!;
      expect(allowedBefore).toBeGreaterThanOrEqual(0);
      expect(deniedBefore).toBeGreaterThanOrEqual(0);
    });

    for (let i = 0; i < 3; i++) expect(await connects(lab, 'h1', 'client', ip.web!)).toBe('ok');
    expect(await connects(lab, 'h1', 'other', ip.web!)).toBe('timed out');

    // Each allowed connection's first packet meets the rule (the rest are established).
    await eventually(async () => {
      expect(await valueOn('h2', allowRule)).toBeGreaterThanOrEqual(allowedBefore + 3);
      expect(await valueOn('h2', defaultDeny)).toBeGreaterThan(deniedBefore);
    });
    // h1 holds no endpoint the policy selects: its copy of the rule counts nothing.
    expect(await valueOn('h1', allowRule)).toBe(0);
  });

  it('keeps containers off the agents\' metrics port, which Prometheus reaches from the underlay', async () => {
    expect(await valueOn('h1', 'up{job="sluice"}')).toBe(1);
    for (const h of lab.hosts) expect(await connects(lab, 'h1', 'client', target[h]!.split(':')[0]!, LAB_METRICS_PORT)).toBe('timed out');
  });

  it('answers every query of the Grafana dashboard, with the dashboard\'s variables filled in', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(5);
    for (const expr of exprs) {
      const results = await query(expr.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '1m'));
      // No plugin call failed here, so only the error panel may be empty.
      if (!expr.includes('outcome="error"')) expect({ expr, series: results.length > 0 }).toEqual({ expr, series: true });
    }
  });
});
