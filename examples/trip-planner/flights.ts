// The flights provider.
import { createMeshNode } from 'mcp-mesh-p2p'
import { Flights, TripInput, hold, seed } from './shapes.ts'

const node = createMeshNode({ name: 'flights' })

node.tool('find_flights', {
  capability: 'flights',
  description: 'Flights to the destination on the first date',
  input: TripInput,
  output: Flights.shape,
}, async ({ destination, dates }) => {
  await hold()
  const n = seed(destination)
  return { flights: [{ flight: `MM${100 + (n % 900)}`, departs: `${dates.split(/\s|to|\//)[0]} 08:${String(n % 60).padStart(2, '0')}` }], by: 'flights' }
})

await node.start()
console.log(`flights serving at ${node.url}`)
