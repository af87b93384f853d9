/**
 * WireGuard keys (Curve25519, base64 of 32 bytes, as `wg genkey` and `wg
 * pubkey` print them), made with Node's own X25519: no process per key.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { BadRequestError } from '../errors';

/** Base64 of 32 bytes: 43 characters and one '='. */
export const WIREGUARD_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** DER of a PKCS#8 X25519 private key, up to the 32 key bytes (RFC 8410). */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function generatePrivateKey(): string {
  const { privateKey } = generateKeyPairSync('x25519');
  return Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64');
}

/** The public key of a private key, as `wg pubkey` computes it. */
export function publicKeyOf(privateKey: string): string {
  if (!WIREGUARD_KEY.test(privateKey)) throw new BadRequestError('not a WireGuard private key (base64 of 32 bytes)');
  // X25519 clamps the scalar as WireGuard does, so any 32 bytes give wg's public key.
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, Buffer.from(privateKey, 'base64')]), format: 'der', type: 'pkcs8' });
  return Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}
