/** What etcd's and grpc's errors mean for the user: an outage to wait out, or a refusal to fix. */
import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';
import { StoreAuthError, StoreTlsError, type SluiceError } from '../../errors';
import type { EtcdStoreOptions } from './options';

/**
 * etcd3 counts ResourceExhausted as recoverable, but etcd answers with it for a
 * request over its size limit or a full database: a refusal, not an outage.
 */
export function isUnavailability(err: Error): boolean {
  return isRecoverableError(err) && !(err instanceof GRPCResourceExhastedError);
}

const PASSWORD_SOURCE = 'SLUICE_ETCD_PASSWORD or --etcd-password-file';

/**
 * What etcd or the TLS handshake refused, named for what the user must change; undefined for
 * anything else. grpc reports handshake failures only as text inside "UNAVAILABLE".
 */
export function refusal(
  err: Error,
  store: string,
  what: string,
  options: Pick<EtcdStoreOptions, 'tls' | 'auth'>,
): SluiceError | undefined {
  const user = options.auth?.username;
  if (err instanceof EtcdAuthenticationFailedError) {
    return new StoreAuthError(`${store} refused the login of user ${user}: wrong user name or password (${PASSWORD_SOURCE})`);
  }
  if (err instanceof EtcdPermissionDeniedError) {
    return new StoreAuthError(
      `${store}: permission denied to ${what} for ${user ? `user ${user}` : 'a client without --etcd-user'}: Sluice needs a role with read-write on the key prefix /sluice/`,
    );
  }
  const text = err.message;
  if (err instanceof GRPCUnauthenticatedError || /etcdserver: user name is empty/.test(text)) {
    return new StoreAuthError(`${store} requires a login: pass --etcd-user NAME and a password (${PASSWORD_SOURCE})`);
  }
  if (/etcdserver: authentication is not enabled/.test(text)) {
    return new StoreAuthError(`${store} has authentication off but --etcd-user is set: drop --etcd-user or enable auth in etcd`);
  }
  if (/unable to verify|self[- ]signed certificate|unable to get local issuer certificate|certificate verify failed/i.test(text)) {
    return new StoreTlsError(
      `${store}: unknown CA: etcd's certificate is not signed by ${options.tls?.ca ? 'the CA of --etcd-ca' : "a CA this system trusts"}: pass the CA that signed it with --etcd-ca`,
    );
  }
  if (/does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(text)) {
    return new StoreTlsError(`${store}: etcd's certificate is not issued for this address: use an address its subjectAltName lists`);
  }
  if (/alert (bad certificate|unknown ca|certificate required|certificate unknown)/i.test(text)) {
    return new StoreTlsError(
      options.tls?.cert
        ? `${store}: certificate refused: etcd does not accept the client certificate of --etcd-cert: use one signed by a CA etcd trusts (its --trusted-ca-file)`
        : `${store}: certificate refused: etcd requires a client certificate: pass --etcd-cert and --etcd-key`,
    );
  }
  if (options.tls && /disconnected before secure TLS connection|wrong version number|packet length too long/i.test(text)) {
    return new StoreTlsError(`${store} does not speak TLS: use etcd:// without --etcd-ca, or the port etcd serves TLS on`);
  }
  // A TLS server drops a plain HTTP/2 connection at once; a dead etcd refuses it (ECONNREFUSED) instead.
  if (!options.tls && /Last error: Failed to connect/.test(text)) {
    return new StoreTlsError(`${store} dropped a plain connection: it probably wants TLS: pass --etcd-ca (and --etcd-cert, --etcd-key if it requires a client certificate)`);
  }
  return undefined;
}

/** grpc's "no connection established": the call was never sent, so another member may take it. */
export function neverSent(err: Error): boolean {
  return /No connection established|ECONNREFUSED/.test(err.message);
}
