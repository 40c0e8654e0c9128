// A real Prometheus server scrapes an agent's /metrics (Debian's `prometheus` package; .ci/run
// installs it): the scrape target comes up, and queries over what it stored match the calls made.
// Locally, without the binary, the test is skipped with a message; in CI it fails instead.
import t from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { z } from 'zod'
import { testMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(90_000)
const CALLS = 5

/** The prometheus binary on PATH (or Debian's /usr/bin), or undefined. */
function findPrometheus (): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin']) {
    const p = join(dir, 'prometheus')
    try { accessSync(p, constants.X_OK); return p } catch {}
  }
  return undefined
}

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

const binary = findPrometheus()
if (binary === undefined) {
  const why = 'the prometheus binary is missing (Debian: apt-get install prometheus; .ci/run installs it)'
  if (process.env.CI !== undefined && process.env.CI !== '') t.fail(`${why}: CI must not skip this test`)
  else t.test('a real Prometheus server scrapes the agent', { skip: why }, async () => {})
} else {
  const mesh = testMesh(t, `prometheus-${process.pid}`)
  const provider = await mesh.start('weather', (n) => {
    n.tool('forecast', { capability: 'weather', input: { city: z.string() } }, ({ city }) => ({ city }))
  })
  const caller = await mesh.start('planner', () => {}, provider.gossip.addrs, { metrics: { port: 0 } })
  await waitFor('the caller to see the provider', () => caller.explain('weather').ranked.length === 1)
  for (let i = 0; i < CALLS; i++) await caller.call('weather', { city: `c${i}` })
  await caller.call('nobody-offers-this').catch(() => {})

  const dir = mkdtempSync(join(tmpdir(), 'mesh-prometheus-'))
  const target = new URL(caller.metricsUrl)
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    'scrape_configs:',
    '  - job_name: mesh',
    `    metrics_path: ${target.pathname}`,
    '    static_configs:',
    `      - targets: ['${target.host}']`,
    '',
  ].join('\n'))
  const port = await freePort()
  const api = `http://127.0.0.1:${port}/api/v1`
  let log = ''
  const prometheus: ChildProcess = spawn(binary, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  prometheus.stderr?.on('data', (c: Buffer) => { log = (log + c.toString()).slice(-8_000) })
  t.teardown(async () => {
    if (prometheus.exitCode === null && prometheus.signalCode === null) {
      const exited = new Promise((resolve) => prometheus.once('exit', resolve))
      prometheus.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const get = async (path: string): Promise<{ status: string, data: any }> => await (await fetch(`${api}${path}`)).json() as { status: string, data: any }
  /** The single value of an instant query, or undefined while there is none. */
  const query = async (q: string): Promise<number | undefined> => {
    const r = await get(`/query?query=${encodeURIComponent(q)}`)
    const v = r.data?.result?.[0]?.value?.[1]
    return v === undefined ? undefined : Number(v)
  }

  t.test('a real Prometheus server scrapes the agent, and its queries match the calls made', async (t) => {
    try {
      await waitFor('Prometheus to scrape the agent\'s endpoint successfully', async () => {
        const r = await get('/targets').catch(() => undefined)
        return r?.data?.activeTargets?.some((x: { scrapeUrl: string, health: string }) => x.scrapeUrl === caller.metricsUrl && x.health === 'up') === true
      }, 30_000, 200)
    } catch (err) {
      t.comment(`prometheus log:\n${log}`)
      throw err
    }
    t.equal(await query(`mcp_mesh_calls_total{job="mesh",capability="weather",provider="weather",outcome="ok"}`), CALLS, 'ok calls, as counted')
    t.equal(await query('mcp_mesh_calls_total{outcome="MESH_ERR_CALL_NO_PROVIDER",provider="none"}'), 1, 'the failed call, by its code')
    t.equal(await query('sum(mcp_mesh_call_duration_seconds_count)'), CALLS + 1, 'one latency sample per call')
    t.equal(await query('mcp_mesh_members{liveness="alive"}'), 2, 'topology size')
    t.equal(await query('up{job="mesh"}'), 1)
  })
}
