import { webcrypto } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import * as asn1js from 'asn1js'
import { MeshError } from '../errors.ts'
import type { CryptoKey } from './x509.ts'

/** The libp2p TLS extension (libp2p TLS handshake spec): a SignedKey, non-critical. */
export const LIBP2P_EXTENSION_OID = '1.3.6.1.4.1.53594.1.1'

/** What the libp2p key signs: this prefix, then the certificate key's SubjectPublicKeyInfo (DER). */
const PREFIX = new TextEncoder().encode('libp2p-tls-handshake:')

function signedData (spki: Uint8Array): Uint8Array {
  const data = new Uint8Array(PREFIX.length + spki.length)
  data.set(PREFIX)
  data.set(spki, PREFIX.length)
  return data
}

/**
 * The extension's value for a certificate whose key is `certKey`, endorsed by the agent's libp2p
 * key: `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`, the public
 * key in libp2p's protobuf encoding.
 */
export async function libp2pExtensionValue (libp2pKey: PrivateKey, certKey: CryptoKey): Promise<ArrayBuffer> {
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', certKey))
  const signature = await libp2pKey.sign(signedData(spki))
  const seq = new asn1js.Sequence({
    value: [
      new asn1js.OctetString({ valueHex: publicKeyToProtobuf(libp2pKey.publicKey) }),
      new asn1js.OctetString({ valueHex: signature }),
    ],
  })
  return seq.toBER(false)
}

/**
 * The peer ID a certificate's libp2p extension names, once its signature over the certificate's
 * key (`spki`, DER) verifies. Throws `MESH_ERR_IDENTITY_INVALID` when the value is malformed or
 * the signature does not verify.
 */
export async function peerIdFromLibp2pExtension (value: Uint8Array, spki: Uint8Array): Promise<string> {
  const bad = (why: string): MeshError => new MeshError('MESH_ERR_IDENTITY_INVALID', `the certificate's libp2p extension ${why}`)
  const parsed = asn1js.fromBER(value)
  const seq = parsed.result
  if (parsed.offset === -1 || !(seq instanceof asn1js.Sequence) || seq.valueBlock.value.length !== 2 ||
    !seq.valueBlock.value.every((v) => v instanceof asn1js.OctetString)) {
    throw bad('is not a SignedKey (a sequence of two octet strings)')
  }
  const [pub, sig] = seq.valueBlock.value.map((v) => new Uint8Array((v as asn1js.OctetString).valueBlock.valueHexView))
  let key
  try {
    key = publicKeyFromProtobuf(pub)
  } catch (err) {
    throw bad(`holds no libp2p public key: ${(err as Error).message}`)
  }
  if (!(await key.verify(signedData(spki), sig))) throw bad('signature does not verify: the libp2p key did not endorse this certificate\'s key')
  return peerIdFromPublicKey(key).toString()
}
