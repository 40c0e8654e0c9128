// One example agent process: `node examples/discovery/agent.ts <name>` with MCP_MESH_BOOTSTRAP set.
import { createGossipNode } from '../../src/index.ts'
import { exampleAgents } from './agents.ts'

const name = process.argv[2] ?? ''
const advert = exampleAgents[name]
if (advert === undefined) {
  console.error(`unknown example agent "${name}"; one of: ${Object.keys(exampleAgents).join(', ')}`)
  process.exit(2)
}
const node = createGossipNode({ name, advert })
await node.start()
await node.ready()
console.log(`${name}: joined as ${node.peerId}`)
const stop = (): void => { void node.stop().then(() => process.exit(0)) }
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
