// DEBUG as the `debug` package reads it, for the mesh's namespaces (test/telemetry/log.test.ts runs it in a process).
import t from 'tap'
import { debugLevel, parseDebug } from '../../src/telemetry/debug-env.ts'

t.test('patterns: lists, wildcards, exclusions', async (t) => {
  const p = parseDebug('mesh:gossip, libp2p:*  mesh:adm*,-mesh:admission:trace')
  t.ok(p.enabled('mesh:gossip'))
  t.ok(p.enabled('libp2p:tcp'))
  t.ok(p.enabled('mesh:admission'))
  t.notOk(p.enabled('mesh:admission:trace'), 'an exclusion wins')
  t.notOk(p.enabled('mesh:gossip:trace'), 'a name is matched whole')
  t.notOk(p.enabled('mesh:node'))
  t.notOk(parseDebug(undefined).enabled('mesh:node'))
  t.notOk(parseDebug('mesh.gossip').enabled('mesh:gossip'), 'a dot is literal')
})

t.test('levels: mesh:* turns on trace (as libp2p\'s :trace loggers), a name debug, nothing else', async (t) => {
  t.equal(debugLevel(parseDebug('mesh:*'), 'mesh:gossip'), 'trace')
  t.equal(debugLevel(parseDebug('mesh:gossip'), 'mesh:gossip'), 'debug')
  t.equal(debugLevel(parseDebug('mesh:gossip:trace'), 'mesh:gossip'), 'trace')
  t.equal(debugLevel(parseDebug('mesh:gossip'), 'mesh:node'), undefined)
})
