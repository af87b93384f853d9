/**
 * The plugin's HTTP surface: one POST route per protocol method, each
 * decode → service call → encode, and one error middleware that turns every
 * failure into a non-200 `{"Err": ...}`. No listening here (see server.ts), so
 * tests drive the app in-process with fake services.
 *
 * dockerd sends no Content-Type and may send an empty body, so bodies are read
 * raw and parsed here. It treats any non-200 as an error and a 200 without a
 * JSON body as a decode failure, hence a body on every reply.
 */
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import createDebug from 'debug';
import { SluiceError, errorMessage } from '../errors';
import { ADDRESS_SPACE_GLOBAL, ADDRESS_SPACE_LOCAL, type IpamService, type NetworkService } from '../protocol/services';
import { NO_METRICS, secondsSince, type Metrics } from '../metrics/metrics';
import * as wire from './wire';

/** Both media types are accepted by dockerd; this is the one the plugin docs name. */
export const PLUGIN_MEDIA_TYPE = 'application/vnd.docker.plugins.v1+json';

/** Generous for any libnetwork request (the largest, CreateEndpoint with many port mappings, is a few KiB). */
const BODY_LIMIT = '1mb';

export interface ApiLog {
  /** One line per request and per reply; meant for the `debug` package. */
  debug(message: string): void;
  /** Failures that are bugs rather than bad requests (the 500s). */
  error(message: string, err: unknown): void;
}

export interface AppDeps {
  network: NetworkService;
  ipam: IpamService;
  /** Defaults to `debug('sluice:api')` for traces and console.error for failures. */
  log?: ApiLog;
  /** Counts and times every request; defaults to none. */
  metrics?: Pick<Metrics, 'pluginRequest'>;
}

const trace = createDebug('sluice:api');
const defaultLog: ApiLog = {
  debug: (message) => trace(message),
  error: (message, err) => console.error(message, err),
};

/** A protocol method: takes the parsed body (undefined if empty) and returns the reply. */
type Method = (body: unknown) => object | Promise<object>;

function methods({ network, ipam }: AppDeps): Record<string, Method> {
  return {
    'Plugin.Activate': () => ({ Implements: ['NetworkDriver', 'IpamDriver'] }),

    // Scope local: a global scope needs a cluster store in dockerd 20.10 (§5).
    'NetworkDriver.GetCapabilities': () => ({ Scope: 'local', ConnectivityScope: 'global' }),
    'NetworkDriver.CreateNetwork': async (body) => {
      await network.createNetwork(wire.decodeCreateNetwork(body));
      return {};
    },
    'NetworkDriver.DeleteNetwork': async (body) => {
      await network.deleteNetwork(wire.decodeDeleteNetwork(body).networkId);
      return {};
    },
    'NetworkDriver.CreateEndpoint': async (body) => {
      const req = wire.decodeCreateEndpoint(body);
      return wire.encodeCreateEndpoint(req, await network.createEndpoint(req));
    },
    'NetworkDriver.EndpointOperInfo': async (body) => {
      const { networkId, endpointId } = wire.decodeEndpointRef('EndpointOperInfo', body);
      return wire.encodeEndpointOperInfo(await network.endpointOperInfo(networkId, endpointId));
    },
    'NetworkDriver.DeleteEndpoint': async (body) => {
      const { networkId, endpointId } = wire.decodeEndpointRef('DeleteEndpoint', body);
      await network.deleteEndpoint(networkId, endpointId);
      return {};
    },
    'NetworkDriver.Join': async (body) => wire.encodeJoin(await network.join(wire.decodeJoin(body))),
    'NetworkDriver.Leave': async (body) => {
      const { networkId, endpointId } = wire.decodeEndpointRef('Leave', body);
      await network.leave(networkId, endpointId);
      return {};
    },
    'NetworkDriver.ProgramExternalConnectivity': async (body) => {
      const { networkId, endpointId, portMappings } = wire.decodeProgramExternalConnectivity(body);
      await network.programExternalConnectivity(networkId, endpointId, portMappings);
      return {};
    },
    'NetworkDriver.RevokeExternalConnectivity': async (body) => {
      const { networkId, endpointId } = wire.decodeEndpointRef('RevokeExternalConnectivity', body);
      await network.revokeExternalConnectivity(networkId, endpointId);
      return {};
    },
    // Only sent in swarm mode or with a cluster store; Sluice has its own node registry.
    'NetworkDriver.DiscoverNew': () => ({}),
    'NetworkDriver.DiscoverDelete': () => ({}),

    'IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    'IpamDriver.GetDefaultAddressSpaces': () => ({
      LocalDefaultAddressSpace: ADDRESS_SPACE_LOCAL,
      GlobalDefaultAddressSpace: ADDRESS_SPACE_GLOBAL,
    }),
    'IpamDriver.RequestPool': async (body) => wire.encodeRequestPool(await ipam.requestPool(wire.decodeRequestPool(body))),
    'IpamDriver.ReleasePool': async (body) => {
      await ipam.releasePool(wire.decodeReleasePool(body).poolId);
      return {};
    },
    'IpamDriver.RequestAddress': async (body) =>
      wire.encodeRequestAddress(await ipam.requestAddress(wire.decodeRequestAddress(body))),
    'IpamDriver.ReleaseAddress': async (body) => {
      const { poolId, address } = wire.decodeReleaseAddress(body);
      await ipam.releaseAddress(poolId, address);
      return {};
    },
  };
}

/** The reply as sent, kept for the trace line written when the response finishes. */
interface Locals {
  reply?: string;
}

function send(res: Response, status: number, body: object): void {
  const text = JSON.stringify(body);
  (res.locals as Locals).reply = text;
  res.status(status).type(PLUGIN_MEDIA_TYPE).send(text);
}

/** body-parser's errors (too large, aborted, bad encoding) carry a client-error status meant to be shown. */
function isClientHttpError(err: unknown): err is Error & { status: number } {
  return (
    err instanceof Error &&
    'status' in err &&
    typeof err.status === 'number' &&
    err.status >= 400 &&
    err.status < 500 &&
    'expose' in err &&
    err.expose === true
  );
}

function rawBody(req: Request): string {
  const body: unknown = req.body;
  return Buffer.isBuffer(body) ? body.toString('utf8') : '';
}

/**
 * Builds the plugin app for the given services. Every reply is JSON with the
 * plugin media type; failures are 4xx/5xx `{"Err": message}`, never a 200.
 *
 * @example
 *   const app = buildApp({ network, ipam });
 *   const listener = await listenUnix(app, '/run/docker/plugins/sluice.sock');
 */
export function buildApp(deps: AppDeps): express.Application {
  const log = deps.log ?? defaultLog;
  const metrics = deps.metrics ?? NO_METRICS;
  const routes = methods(deps);
  const app = express();
  app.disable('x-powered-by');

  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = secondsSince(start);
      log.debug(`${req.method} ${req.path} -> ${res.statusCode} in ${(seconds * 1000).toFixed(1)} ms: ${(res.locals as Locals).reply ?? ''}`);
      // Any other path is one label value: what a client makes up must not make new series.
      const method = Object.hasOwn(routes, req.path.slice(1)) ? req.path.slice(1) : 'other';
      metrics.pluginRequest(method, res.statusCode < 400, seconds);
    });
    next();
  });
  // Any content type: dockerd sends none.
  app.use(express.raw({ type: () => true, limit: BODY_LIMIT }));
  app.use((req, _res, next) => {
    log.debug(`${req.method} ${req.path} <- ${rawBody(req).trimEnd() || '(empty body)'}`);
    next();
  });

  for (const [name, method] of Object.entries(routes)) {
    app.post(`/${name}`, async (req, res) => {
      send(res, 200, await method(wire.parseBody(name, rawBody(req))));
    });
  }

  // 404 is how a plugin says "not implemented" (AllocateNetwork, FreeNetwork, anything newer).
  app.use((req, res) => {
    send(res, 404, { Err: `${req.path.slice(1)} not implemented` } satisfies wire.ErrorReply);
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof SluiceError) {
      // A 200 would read as success to dockerd; no error class should map to it.
      send(res, err.httpStatus >= 400 ? err.httpStatus : 500, { Err: err.message } satisfies wire.ErrorReply);
    } else if (isClientHttpError(err)) {
      send(res, err.status, { Err: `${req.path.slice(1)} request: ${err.message}` } satisfies wire.ErrorReply);
    } else {
      log.error(`${req.method} ${req.path} failed unexpectedly`, err);
      send(res, 500, { Err: `internal error: ${errorMessage(err)}` } satisfies wire.ErrorReply);
    }
  });

  return app;
}
