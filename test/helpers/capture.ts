// What crosses a lab's underlay: tcpdump on a host's port of the underlay bridge (the bridge
// device itself sees only frames addressed to it), written raw to a pcap file, so a test can ask
// whether some bytes crossed in the clear and what kind of packets carried the traffic.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Lab } from './lab';

export interface Capture {
  /** Ends the capture; the raw bytes of every packet, and tcpdump's one-line summary of each. */
  stop(): Promise<{ bytes: Buffer; summary: string[] }>;
}

/** Starts capturing on HOST's port of the underlay bridge; resolves once tcpdump listens. */
export async function captureUnderlay(lab: Lab, host: string): Promise<Capture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-capture-'));
  const file = path.join(dir, 'underlay.pcap');
  const netns = `/run/netns/sluice-${lab.name}-ul`;
  // --immediate-mode and -U: each packet goes from the kernel to the file at once; otherwise the
  // kernel hands packets over a second late, and a capture stopped right after a fast exchange is empty.
  const tcpdump = spawn('nsenter', [`--net=${netns}`, 'tcpdump', '-i', `v${host}`, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => tcpdump.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let stderr = '';
    tcpdump.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.includes('listening on')) resolve();
    });
    tcpdump.once('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${stderr}`)));
  });
  return {
    async stop() {
      tcpdump.kill('SIGINT');
      await exited;
      const bytes = readFileSync(file);
      const summary = spawnSync('tcpdump', ['-r', file, '-n'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '');
      rmSync(dir, { recursive: true, force: true });
      return { bytes, summary };
    },
  };
}
