// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, server mode) as its
// own process against an MCP endpoint, and reads the checks it writes for each scenario.
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { reapOnExit } from './reap.ts'

const suiteBin = join(createRequire(import.meta.url).resolve('@modelcontextprotocol/conformance/package.json'), '..', 'dist', 'index.js')

/** One check of a scenario, as the suite writes it to `checks.json`. */
export interface Check { id: string, status: 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO', errorMessage?: string }

/** Scenarios of `--suite all` that need resources, prompts or completions: the mesh offers tools only. */
export const TOOLS_ONLY_NOT_APPLICABLE = [
  'completion-complete',
  'prompts-get-embedded-resource', 'prompts-get-simple', 'prompts-get-with-args', 'prompts-get-with-image', 'prompts-list',
  'resources-list', 'resources-read-binary', 'resources-read-text', 'resources-subscribe', 'resources-templates-read', 'resources-unsubscribe',
]

/** Every other scenario of `--suite all` (the protocol, tools, and a tool's logs and requests to its caller): agents and the gateway pass them all; the README lists the same. */
export const TOOL_SCENARIOS = [
  'dns-rebinding-protection', 'elicitation-sep1034-defaults', 'elicitation-sep1330-enums', 'json-schema-2020-12', 'logging-set-level', 'ping',
  'server-initialize', 'server-sse-multiple-streams', 'server-sse-polling', 'tools-call-audio', 'tools-call-elicitation',
  'tools-call-embedded-resource', 'tools-call-error', 'tools-call-image', 'tools-call-mixed-content', 'tools-call-sampling',
  'tools-call-simple-text', 'tools-call-with-logging', 'tools-call-with-progress', 'tools-list',
]

/** Runs `server --suite all` against `url`: the suite's exit code and each scenario's checks. */
export async function runConformance (url: string): Promise<{ code: number | null, results: Map<string, Check[]> }> {
  const out = await mkdtemp(join(tmpdir(), 'mesh-conformance-'))
  try {
    const suite = spawn(process.execPath, [suiteBin, 'server', '--url', url, '--suite', 'all', '-o', out], { stdio: ['ignore', 'ignore', 'inherit'] })
    reapOnExit(suite)
    const code = await new Promise<number | null>((resolve) => suite.once('exit', resolve))
    const results = new Map<string, Check[]>()
    for (const dir of await readdir(out)) {
      const scenario = dir.replace(/^server-/, '').replace(/-\d{4}-\d\d-\d\dT.*$/, '')
      results.set(scenario, JSON.parse(await readFile(join(out, dir, 'checks.json'), 'utf8')) as Check[])
    }
    return { code, results }
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}

/** The failed checks of `checks`, as `id: message` lines. */
export const failures = (checks: Check[] | undefined): string[] => (checks ?? []).filter((c) => c.status === 'FAILURE').map((c) => `${c.id}: ${c.errorMessage ?? ''}`)
