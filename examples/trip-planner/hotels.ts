// The hotels provider.
import { createMeshNode } from 'mcp-mesh-p2p'
import { Hotels, TripInput, hold, seed } from './shapes.ts'

const node = createMeshNode({ name: 'hotels' })

node.tool('find_hotels', {
  capability: 'hotels',
  description: 'Hotels with rooms for the dates',
  // A lookup: safe to send to another provider if the first is lost mid-call.
  annotations: { readOnlyHint: true },
  input: TripInput,
  output: Hotels.shape,
}, async ({ destination }) => {
  await hold()
  const base = 80 + (seed(destination) % 120)
  return { hotels: [{ name: `Grand ${destination}`, pricePerNight: base + 90 }, { name: `${destination} Central Inn`, pricePerNight: base }], by: 'hotels' }
})

await node.start()
console.log(`hotels serving at ${node.url}`)
