import { z } from 'zod'
import type { AbortOptions } from '@libp2p/interface'
import type { FrameStream } from './net.ts'
import type { Liveness } from '../topology/advert.ts'
import { MeshError } from '../errors.ts'

/**
 * How one side sees the other, sent when it is not plain `alive` (by probes and sync), so a
 * member wrongly held suspect or dead learns it and refutes.
 */
export interface View { l: Liveness, i: number }

/** A `View` on the wire (absent when alive). */
export const ViewSchema = z.object({ l: z.enum(['alive', 'suspect', 'dead', 'left']), i: z.number().int() }).optional()

/** Bytes of frames sent and received on a protocol (tests and benchmarks read them). */
export interface ByteCounter { in: number, out: number }

const enc = new TextEncoder()
const dec = new TextDecoder()

/** JSON frames on a stream, counted, each read validated against a zod schema. */
export interface JsonFrames<Out> {
  send(frame: Out, options?: AbortOptions): Promise<void>
  /** The next frame, parsed; a frame that is not JSON or fails `schema` throws MESH_ERR_WIRE_MALFORMED. */
  recv<T extends z.ZodType>(schema: T, options?: AbortOptions): Promise<z.infer<T>>
}

/** The mesh's request/response protocols (probe, sync) speak JSON frames over a `FrameStream`. */
export function jsonFrames<Out> (stream: FrameStream, bytes: ByteCounter, what: string, defaults: AbortOptions = {}): JsonFrames<Out> {
  return {
    async send (frame, options = defaults) {
      const b = enc.encode(JSON.stringify(frame))
      bytes.out += b.length
      await stream.write(b, options)
    },
    async recv (schema, options = defaults) {
      const b = await stream.read(options)
      bytes.in += b.length
      let raw: unknown
      try {
        raw = JSON.parse(dec.decode(b))
      } catch {
        throw new MeshError('MESH_ERR_WIRE_MALFORMED', `malformed ${what} frame: not JSON`)
      }
      const parsed = schema.safeParse(raw)
      if (!parsed.success) throw new MeshError('MESH_ERR_WIRE_MALFORMED', `malformed ${what} frame: ${parsed.error.issues[0]?.message}`)
      return parsed.data
    },
  }
}
