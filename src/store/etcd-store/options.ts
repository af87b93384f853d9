/** How to reach an etcd cluster. */
export const DEFAULT_ETCD_TIMEOUT_MS = 3000;
export interface EtcdStoreOptions {
  /** "HOST:PORT" of each member. */
  endpoints: string[];
  /** Deadline of every call, and of a watch's start. */
  timeoutMs?: number;
  /** Speak TLS to every member. */
  tls?: EtcdTls;
  /** Log in as this etcd user. */
  auth?: EtcdAuth;
}

/** PEM contents. */
export interface EtcdTls {
  /** The CA that signed etcd's certificate; the system's CAs when absent. */
  ca?: Buffer;
  /** A client certificate and its key, for an etcd run with --client-cert-auth. */
  cert?: Buffer;
  key?: Buffer;
}

export interface EtcdAuth {
  username: string;
  password: string;
}
