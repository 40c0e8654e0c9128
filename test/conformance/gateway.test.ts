// The official MCP conformance suite (server mode, `--suite all`) against `meshctl gateway --http`,
// in front of a mesh under mutual TLS whose one agent offers the suite's fixture tools (their
// capabilities are the tool names the suite calls). Agent, gateway and suite are processes.
import t from 'tap'
import { spawnExample } from '../helpers/agents.ts'
import { TOOL_SCENARIOS as PASSING, TOOLS_ONLY_NOT_APPLICABLE, failures, runConformance } from '../helpers/conformance.ts'
import { gatewayMesh } from '../helpers/gateway-mesh.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(300_000)

const m = await gatewayMesh(t, 'gateway-conformance')
m.agents.push(await spawnExample('test/fixtures/conformance-agent.ts', [], m.env))
// The gateway takes the bootstrap's snapshot when it joins: wait until the agent's advert is in it.
await waitFor('the bootstrap knows the fixture agent', () => [...m.boot.replica.members()].some((x) => x.advert.tools.length > 0))
const gateway = await m.http()
const { code, results } = await runConformance(gateway.url)

t.test('the suite ran the scenarios the README names, and exactly those about tools and the protocol pass', async (t) => {
  t.match(gateway.stderr(), /serving 13 tools at/, 'the gateway served every fixture tool from the start')
  t.same([...results.keys()].sort(), [...PASSING, ...TOOLS_ONLY_NOT_APPLICABLE].sort())
  const passed = [...results].filter(([, checks]) => failures(checks).length === 0).map(([s]) => s).sort()
  t.same(passed, PASSING, 'every scenario about tools and the protocol passes')
  t.equal(code, 1, 'the suite exits 1 for the scenarios that do not pass')
})
for (const scenario of PASSING) {
  t.test(scenario, async (t) => {
    t.same(failures(results.get(scenario)), [], 'no check fails')
  })
}
t.test('not applicable: resources, prompts and completions (the gateway offers tools)', async (t) => {
  for (const scenario of TOOLS_ONLY_NOT_APPLICABLE) t.match(failures(results.get(scenario)).join('\n'), /Method not found|-32601/, scenario)
})
