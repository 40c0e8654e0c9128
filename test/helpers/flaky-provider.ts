// A mesh provider whose HTTP server answers 500 to every tools/call while `failing` is set,
// counting the calls that reach it (a tools/call carries the caller's budget header; initialize
// does not): the tests of retries and circuit breaking count attempts exactly with it.
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'
import { testNodeOptions } from './mesh.ts'

/** A running provider of `lookup` (read-only), `charge` (no hints) and `advised` (read-only, recommending 2 retries), and its switches. */
export interface FlakyProvider {
  node: MeshNode
  /** tools/call requests that reached its server. */
  hits: number
  failing: boolean
}

/** Starts a provider in `mesh` that joins through `bootstrap`. */
export async function flakyProvider (mesh: string, name: string, failing: boolean, bootstrap: string[]): Promise<FlakyProvider> {
  const p: FlakyProvider = { node: undefined as unknown as MeshNode, hits: 0, failing }
  p.node = createMeshNode(testNodeOptions(mesh, name, { bootstrap }), {
    createServer: (listener) => createServer((req, res) => {
      if (req.headers['mcp-mesh-timeout-ms'] === undefined) { listener(req, res); return }
      p.hits++
      if (!p.failing) { listener(req, res); return }
      req.resume()
      req.on('end', () => { res.writeHead(500, { 'content-type': 'text/plain' }).end('the provider broke') })
    }) as Server,
  })
  p.node.tool('lookup', { capability: 'lookup', annotations: { readOnlyHint: true } }, async () => ({ from: name }))
  p.node.tool('charge', { capability: 'charge' }, async () => ({ from: name }))
  p.node.tool('advised', { capability: 'advised', annotations: { readOnlyHint: true }, defaults: { retries: 2 } }, async () => ({ from: name }))
  await p.node.start()
  await p.node.ready()
  return p
}
