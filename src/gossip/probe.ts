import { z } from 'zod'
import { lpStream } from '@libp2p/utils'
import type { Stream, AbortOptions } from '@libp2p/interface'
import type { View } from './sync.ts'

/** The SWIM probe protocol of a mesh: ping, and ping-req (probe a member for me). */
export function probeProtocol (mesh: string): string {
  return `/mcp-mesh/${mesh}/probe/1`
}

const ViewSchema = z.object({ l: z.enum(['alive', 'suspect', 'dead', 'left']), i: z.number().int() }).optional()
const Frame = z.discriminatedUnion('t', [
  z.object({ t: z.literal('ping'), you: ViewSchema }),
  z.object({ t: z.literal('req'), target: z.string().min(1).max(128) }),
  z.object({ t: z.literal('ack'), you: ViewSchema }),
  z.object({ t: z.literal('nack') }),
])
type ProbeFrame = z.infer<typeof Frame>

/** What the probe protocol needs from its node. */
export interface ProbeContext {
  viewOf(peerId: string): View | undefined
  onView(view: View, from: string): void
  /** Probes `target` directly on behalf of another member. */
  probeFor(target: string, options: AbortOptions): Promise<boolean>
  bytes: { in: number, out: number }
}

const enc = new TextEncoder()
const dec = new TextDecoder()

function io (stream: Stream, ctx: ProbeContext, options: AbortOptions) {
  const lp = lpStream(stream, { maxDataLength: 1024 })
  return {
    send: async (f: ProbeFrame) => {
      const b = enc.encode(JSON.stringify(f))
      ctx.bytes.out += b.length
      await lp.write(b, options)
    },
    recv: async (): Promise<ProbeFrame> => {
      const b = (await lp.read(options)).subarray()
      ctx.bytes.in += b.length
      return Frame.parse(JSON.parse(dec.decode(b)))
    },
  }
}

/** Sends a ping on `stream` and waits for the ack; true when acknowledged. */
export async function ping (stream: Stream, remote: string, ctx: ProbeContext, options: AbortOptions): Promise<boolean> {
  const s = io(stream, ctx, options)
  await s.send({ t: 'ping', you: ctx.viewOf(remote) })
  const reply = await s.recv()
  if (reply.t === 'ack' && reply.you !== undefined) ctx.onView(reply.you, remote)
  return reply.t === 'ack'
}

/** Asks the member at the other end of `stream` to probe `target`; true when it reached it. */
export async function pingReq (stream: Stream, target: string, ctx: ProbeContext, options: AbortOptions): Promise<boolean> {
  const s = io(stream, ctx, options)
  await s.send({ t: 'req', target })
  return (await s.recv()).t === 'ack'
}

/** Answers one probe frame on an inbound stream. */
export async function serveProbe (stream: Stream, remote: string, ctx: ProbeContext, options: AbortOptions): Promise<void> {
  const s = io(stream, ctx, options)
  const frame = await s.recv()
  if (frame.t === 'ping') {
    if (frame.you !== undefined) ctx.onView(frame.you, remote)
    await s.send({ t: 'ack', you: ctx.viewOf(remote) })
  } else if (frame.t === 'req') {
    const ok = await ctx.probeFor(frame.target, options).catch(() => false)
    await s.send(ok ? { t: 'ack', you: undefined } : { t: 'nack' })
  }
}
