// A mesh for the gateway's process tests: a bootstrap on the defaults (mutual TLS, a local CA in a
// fresh home), agent processes and host clients closed at teardown, and the gateway spawned over
// stdio as a host spawns it.
import { spawn } from 'node:child_process'
import type { ChildProcessByStdio } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { startBootstrap } from '../../src/bootstrap/daemon.ts'
import type { GossipNode } from '../../src/gossip/gossip-node.ts'
import type { ExampleAgent } from './agents.ts'
import { reapOnExit } from './reap.ts'
import { waitFor } from './wait.ts'

/** The repository's root: where `bin/meshctl.js` runs from. */
export const root = fileURLToPath(new URL('../..', import.meta.url))

/** One test file's mesh. */
export interface GatewayMesh {
  mesh: string
  home: string
  boot: GossipNode
  /** The environment an agent process of this mesh needs. */
  env: Record<string, string>
  /** Killed at teardown when still running. */
  agents: ExampleAgent[]
  /** Closed at teardown. */
  clients: Client[]
  /** Connects `client` to a `meshctl gateway` (with `extra` arguments) it spawns over stdio. */
  connect(client: Client, ...extra: string[]): Promise<void>
  /** Spawns `meshctl gateway --http 127.0.0.1:0` (with `extra` arguments and environment); resolves once it prints its URL. */
  http(extra?: string[], env?: Record<string, string>): Promise<HttpGateway>
}

/** A gateway process serving Streamable HTTP; killed at teardown when still running. */
export interface HttpGateway {
  proc: ChildProcessByStdio<null, null, Readable>
  /** Its `/mcp` URL, from the line it prints on stderr. */
  url: string
  /** What it printed on stderr so far. */
  stderr(): string
  /** Resolves with its exit code. */
  exited: Promise<number | null>
}

/** Starts the bootstrap of a mesh named after `name` and the test's pid; everything is stopped at teardown. */
export async function gatewayMesh (t: { teardown: (fn: () => Promise<void>) => void }, name: string): Promise<GatewayMesh> {
  const mesh = `${name}-${process.pid}`
  const home = await mkdtemp(join(tmpdir(), `mesh-${name}-`))
  const boot = await startBootstrap({ mesh, home, ephemeralKey: true, colocated: true, listen: ['/ip4/127.0.0.1/tcp/0'] })
  const agents: ExampleAgent[] = []
  const clients: Client[] = []
  const gateways: HttpGateway[] = []
  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})))
    for (const g of gateways) if (g.proc.exitCode === null && g.proc.signalCode === null) g.proc.kill('SIGKILL')
    await Promise.all(gateways.map((g) => g.exited))
    for (const a of agents) if (a.proc.exitCode === null && a.proc.signalCode === null) a.proc.kill('SIGKILL')
    await Promise.all(agents.map((a) => a.exited))
    await boot.stop()
    await rm(home, { recursive: true, force: true })
  })
  return {
    mesh,
    home,
    boot,
    env: { MCP_MESH_NAMESPACE: mesh, MCP_MESH_HOME: home, MCP_MESH_BOOTSTRAP: boot.addrs[0] },
    agents,
    clients,
    async connect (client, ...extra) {
      await client.connect(new StdioClientTransport({
        command: process.execPath,
        args: ['bin/meshctl.js', 'gateway', '--bootstrap', boot.addrs[0], '--mesh', mesh, ...extra],
        cwd: root,
        env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1' } as Record<string, string>,
        stderr: 'inherit',
      }))
      clients.push(client)
    },
    async http (extra = [], env = {}) {
      const proc = spawn(process.execPath, ['bin/meshctl.js', 'gateway', '--http', '127.0.0.1:0', '--bootstrap', boot.addrs[0], '--mesh', mesh, ...extra], {
        cwd: root, env: { ...process.env, MCP_MESH_HOME: home, NO_COLOR: '1', ...env }, stdio: ['ignore', 'ignore', 'pipe'],
      })
      reapOnExit(proc)
      const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve))
      let err = ''
      proc.stderr.on('data', (d: Buffer) => { err += d.toString() })
      const g: HttpGateway = { proc, url: '', stderr: () => err, exited }
      gateways.push(g)
      await waitFor('the gateway prints its URL', () => / tools at http:\S+\n/.test(err) || proc.exitCode !== null, 30_000)
      const m = / tools at (http:\S+)\n/.exec(err)
      if (m === null) throw new Error(`the gateway exited (${proc.exitCode}): ${err}`)
      g.url = m[1]
      return g
    },
  }
}
