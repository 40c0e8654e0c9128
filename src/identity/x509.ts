// @peculiar/x509 reads its ASN.1 schemas through decorators: reflect-metadata must load first.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

/** A Web Crypto key, as Node's `webcrypto` makes them. */
export type CryptoKey = webcrypto.CryptoKey
/** A Web Crypto key pair. */
export type CryptoKeyPair = webcrypto.CryptoKeyPair

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

/**
 * The one key type the mesh issues: ECDSA P-256 with SHA-256. Every TLS stack, OpenSSL, SPIRE
 * (its default) and Vault accept it, and MCP Mesh's own chain uses it; Ed25519 is faster to
 * sign with, but TLS clients still lag on Ed25519 certificates.
 */
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

/** A new P-256 key pair, exportable (it is written to a file or handed to TLS as PEM). */
export async function generateKeys (): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])
}

/** A private key as PKCS #8 PEM, as OpenSSL and Node's TLS read it. */
export async function privateKeyPem (key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key)
  return x509.PemConverter.encode(der, 'PRIVATE KEY')
}

/** Imports a PKCS #8 PEM P-256 private key for signing. */
export async function importPrivateKey (pem: string): Promise<CryptoKey> {
  return await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), KEY_ALGORITHM, true, ['sign'])
}

/** A random positive serial number of 16 bytes (RFC 5280 allows up to 20), as hex. */
export function serialNumber (): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16))
  b[0] &= 0x7f
  b[0] |= 0x01 // never a leading zero byte, so the DER integer keeps all 16 bytes
  return Buffer.from(b).toString('hex')
}

export { x509 }
