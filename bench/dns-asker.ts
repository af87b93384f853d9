// A questions for one name, run inside a container's network namespace
// (nsenter -t PID -n node dns-asker.js …), so 127.0.0.11 is that container's Docker embedded DNS.
//
//   dns-asker.js SERVER NAME time COUNT      asks COUNT times, one after another; prints the round
//                                            trips in ms as a JSON array (fails on an answer without an address)
//   dns-asker.js SERVER NAME until MAX_MS    asks every 5 ms until an answer has an address; prints
//                                            the nowMs() of that answer (fails after MAX_MS)
import * as dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { nowMs, sleep } from './proc';

const QUESTION_TIMEOUT_MS = 1000;

/** One A question; resolves with its round trip and whether the answer had an address (false on no answer in time). */
function ask(socket: dgram.Socket, server: string, name: string, id: number): Promise<{ ms: number; answered: boolean }> {
  const sent = nowMs();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      resolve({ ms: nowMs() - sent, answered: false });
    }, QUESTION_TIMEOUT_MS);
    const onMessage = (bytes: Buffer): void => {
      const reply = dnsPacket.decode(bytes);
      if (reply.id !== id) return;
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve({ ms: nowMs() - sent, answered: (reply.answers ?? []).some((a) => a.type === 'A') });
    };
    socket.on('message', onMessage);
    socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, server);
  });
}

async function main(): Promise<void> {
  const [server, name, mode, arg] = process.argv.slice(2);
  const n = Number(arg);
  if (!server || !name || !(mode === 'time' || mode === 'until') || !(n > 0)) throw new Error('usage: dns-asker.js SERVER NAME time COUNT | until MAX_MS');
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  try {
    if (mode === 'time') {
      const trips: number[] = [];
      for (let i = 0; i < n; i++) {
        const { ms, answered } = await ask(socket, server, name, i & 0xffff);
        if (!answered) throw new Error(`${name}: no address from ${server} (question ${i})`);
        trips.push(ms);
      }
      process.stdout.write(`${JSON.stringify(trips)}\n`);
      return;
    }
    const deadline = nowMs() + n;
    for (let id = 0; nowMs() < deadline; id = (id + 1) & 0xffff) {
      if ((await ask(socket, server, name, id)).answered) {
        process.stdout.write(`${nowMs()}\n`);
        return;
      }
      await sleep(5);
    }
    throw new Error(`${name}: no address from ${server} within ${n} ms`);
  } finally {
    socket.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`dns-asker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
