/** Sends a request to a plugin socket the way dockerd does (no Content-Type), for bad-input tests. */
import http from 'node:http';

export function pluginCall(socketPath: string, method: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path: `/${method}`, method: 'POST', headers: { Accept: 'application/vnd.docker.plugins.v1.2+json' }, timeout: 10_000 },
      (res) => {
        let data = '';
        res.on('data', (chunk: Buffer) => (data += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method}: no answer within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}
