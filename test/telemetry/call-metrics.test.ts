// The call metrics on their own: events in, text format out; label sets stay bounded.
import t from 'tap'
import { Registry } from 'prom-client'
import { callMetrics, MAX_SERIES } from '../../src/telemetry/call-metrics.ts'
import { parseSamples, value } from '../helpers/prom-text.ts'

t.test('each call ends in one counter increment and one latency sample, in seconds', async (t) => {
  const registry = new Registry()
  const events = callMetrics(registry)
  events.callEnded({ dependency: 'w', capability: 'weather', agent: 'a', outcome: 'ok', ms: 0.7 })
  events.callEnded({ dependency: 'w', capability: 'weather', agent: 'a', outcome: 'ok', ms: 40 })
  events.callEnded({ dependency: 'w', capability: 'weather', agent: undefined, outcome: 'MESH_ERR_CALL_NO_PROVIDER', ms: 0 })
  events.served({ tool: 'forecast', capability: 'weather', caller: 'spiffe://d/agent/x', outcome: 'ok', ms: 3 })
  const s = parseSamples(await registry.metrics())
  t.equal(value(s, 'mcp_mesh_calls_total', { capability: 'weather', provider: 'a', outcome: 'ok' }), 2)
  t.equal(value(s, 'mcp_mesh_calls_total', { provider: 'none', outcome: 'MESH_ERR_CALL_NO_PROVIDER' }), 1)
  t.equal(value(s, 'mcp_mesh_call_duration_seconds_bucket', { provider: 'a', le: '0.001' }), 1, '0.7 ms is under 1 ms')
  t.equal(value(s, 'mcp_mesh_call_duration_seconds_bucket', { provider: 'a', le: '0.05' }), 2)
  t.equal(value(s, 'mcp_mesh_call_duration_seconds_sum', { provider: 'a' }), 0.0407)
  t.equal(value(s, 'mcp_mesh_served_calls_total', { tool: 'forecast', outcome: 'ok' }), 1)
  t.notOk(s.some((x) => Object.values(x.labels).some((v) => v.startsWith('spiffe:'))), 'no caller identity in any label')
})

t.test(`past ${MAX_SERIES} label sets, new ones are counted under "other"`, async (t) => {
  const registry = new Registry()
  const events = callMetrics(registry)
  const n = MAX_SERIES + 50
  for (let i = 0; i < n; i++) events.callEnded({ dependency: 'd', capability: `cap-${i}`, agent: 'a', outcome: 'ok', ms: 1 })
  for (let i = 0; i < n; i++) events.served({ tool: 't', capability: 't', caller: undefined, outcome: `MESH_ERR_MADE_UP_${i}`, ms: 1 })
  const s = parseSamples(await registry.metrics())
  const series = s.filter((x) => x.name === 'mcp_mesh_calls_total')
  t.equal(series.length, MAX_SERIES + 1, 'at most the cap, plus one overflow series')
  t.equal(value(s, 'mcp_mesh_calls_total', { capability: 'other', provider: 'other', outcome: 'other' }), 50)
  t.equal(value(s, 'mcp_mesh_calls_total'), n, 'every call still counted')
  t.equal(s.filter((x) => x.name === 'mcp_mesh_served_calls_total').length, MAX_SERIES + 1)
  t.equal(value(s, 'mcp_mesh_served_calls_total', { outcome: 'other' }), 50)
})
