/**
 * Typed errors. Every failure the agent can report is one of these classes,
 * converted once at each boundary: adapters turn etcd/exec errors into them,
 * the HTTP layer turns them into `{"Err": "..."}` and the CLI into one line.
 */
export abstract class SluiceError extends Error {
  abstract readonly code: string;
  /** HTTP status for the plugin API; Docker only cares that it is not 200. */
  readonly httpStatus: number = 500;
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request itself is wrong: malformed JSON, a missing field, a bad CIDR. */
export class BadRequestError extends SluiceError {
  readonly code = 'bad-request';
  override readonly httpStatus = 400;
}

/** A network, pool, endpoint or address the request names does not exist. */
export class NotFoundError extends SluiceError {
  readonly code = 'not-found';
  override readonly httpStatus = 404;
}

/** The request conflicts with existing state: overlapping subnet, taken address. */
export class ConflictError extends SluiceError {
  readonly code = 'conflict';
  override readonly httpStatus = 409;
}

/** A pool or the default supernet has no free address or block left. */
export class ExhaustedError extends SluiceError {
  readonly code = 'exhausted';
  override readonly httpStatus = 507;
}

/** Something the protocol allows but Sluice does not do (yet), e.g. IPv6. */
export class NotSupportedError extends SluiceError {
  readonly code = 'not-supported';
  override readonly httpStatus = 501;
}

/** The store (etcd or the state file) did not answer in time or refused. */
export class StoreUnavailableError extends SluiceError {
  readonly code = 'store-unavailable';
  override readonly httpStatus = 503;
}

/**
 * The store answered but refused the request: too large, out of space, not
 * permitted. Retrying will not help, unlike StoreUnavailableError.
 */
export class StoreRefusedError extends SluiceError {
  readonly code = 'store-refused';
}

/** A record read from the store does not hold what its key says it should; the message names the key. */
export class InvalidRecordError extends SluiceError {
  readonly code = 'invalid-record';

  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`invalid record in the store at ${key}: ${reason} (rewrite or delete the key)`);
  }
}

/**
 * etcd refused who Sluice is or what it asked: a wrong user name or password, or a role
 * that does not allow the key. Unlike StoreUnavailableError, waiting does not help.
 */
export class StoreAuthError extends SluiceError {
  readonly code = 'store-auth';
  override readonly httpStatus = 503;
}

/** The TLS handshake with etcd failed: an unknown CA, a refused client certificate, TLS on one side only. */
export class StoreTlsError extends SluiceError {
  readonly code = 'store-tls';
  override readonly httpStatus = 503;
}

/** A kernel operation (ip, iptables, ipset) failed. */
export class DataplaneError extends SluiceError {
  readonly code = 'dataplane';
}

/** dockerd did not answer (not running, restarting) or failed inside (HTTP 5xx). */
export class DockerUnavailableError extends SluiceError {
  readonly code = 'docker-unavailable';
  override readonly httpStatus = 503;
}

/** dockerd answered but refused the request (HTTP 4xx): retrying will not help. */
export class DockerRefusedError extends SluiceError {
  readonly code = 'docker-refused';

  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/** A policy document or selector is invalid; the message names the position. */
export class PolicyError extends SluiceError {
  readonly code = 'policy';
  override readonly httpStatus = 400;
}

/**
 * Worth retrying: the store, dockerd or the kernel may well answer next time.
 * etcd refusing a login or a certificate counts: an operator fixes that in etcd,
 * and the agents then carry on without a restart.
 */
export function isTransient(err: unknown): boolean {
  return (
    err instanceof StoreUnavailableError ||
    err instanceof StoreAuthError ||
    err instanceof StoreTlsError ||
    err instanceof DockerUnavailableError ||
    err instanceof DataplaneError
  );
}

/** Not a failure Sluice knows (a TypeError, a RangeError…): a bug, to be shown with its stack. */
export function isBug(err: unknown): boolean {
  return !(err instanceof SluiceError);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
