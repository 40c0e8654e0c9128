// In-process mesh nodes for tests: real libp2p over loopback TCP, real HTTP, no key files.
import type { MeshNodeOptionsInput } from '../../src/config.ts'
import { createMeshNode } from '../../src/node.ts'
import type { MeshNode } from '../../src/node.ts'

/**
 * Options every in-process test node shares: its own mesh name, throwaway keys, no signal handlers,
 * and plain HTTP: these tests drive the endpoint and the call path at the HTTP level, with plain
 * clients, fake providers and raw requests. Mutual TLS, the default, is what test/identity and the
 * multi-process tests run (the example agents and meshctl start on the defaults).
 */
export function testNodeOptions (mesh: string, name: string, extra: Partial<MeshNodeOptionsInput> = {}): MeshNodeOptionsInput {
  return { mesh, name, ephemeralKey: true, colocated: true, handleSignals: false, settleMs: 0, tls: { mode: 'off' }, ...extra }
}

/** Creates a node, lets `define` register its tools, starts it and waits for its first sync. */
export async function startNode (mesh: string, name: string, define: (n: MeshNode) => void, extra: Partial<MeshNodeOptionsInput> = {}): Promise<MeshNode> {
  const node = createMeshNode(testNodeOptions(mesh, name, extra))
  define(node)
  await node.start()
  await node.ready()
  return node
}

/** The nodes of one test file's mesh, all stopped at teardown; `start` adds one joined through `bootstrap`. */
export function testMesh (t: { teardown: (fn: () => Promise<void>) => void }, mesh: string): { nodes: MeshNode[], start: (name: string, define?: (n: MeshNode) => void, bootstrap?: string[], extra?: Partial<MeshNodeOptionsInput>) => Promise<MeshNode> } {
  const nodes: MeshNode[] = []
  t.teardown(async () => { await Promise.all(nodes.map(async (n) => n.stop())) })
  return {
    nodes,
    start: async (name, define = () => {}, bootstrap = [], extra = {}) => {
      const n = await startNode(mesh, name, define, { bootstrap, ...extra })
      nodes.push(n)
      return n
    },
  }
}
