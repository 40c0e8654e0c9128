// plan_trip: depends on weather (preferring providers tagged claude), hotels and flights.
// Each dependency is injected as a callable; the three calls go straight to their providers.
import { createMeshNode } from 'mcp-mesh-p2p'
import { Flights, Forecast, Hotels, TripInput } from './shapes.ts'

const node = createMeshNode({ name: 'trip-planner' })

node.tool('plan_trip', {
  capability: 'plan_trip',
  description: 'Plans a trip: forecast, hotels and flights',
  input: TripInput,
  dependencies: {
    weather: { capability: 'weather', tags: ['+claude'], output: Forecast },
    hotels: { capability: 'hotels', output: Hotels },
    flights: { capability: 'flights', output: Flights, timeout: 60_000 },
  },
}, async (args, { weather, hotels, flights }, { signal }) => {
  const [w, h, f] = await Promise.all([
    weather.invoke(args, { signal }),
    hotels.invoke(args, { signal }),
    flights.invoke(args, { signal }),
  ])
  return {
    destination: args.destination,
    dates: args.dates,
    forecast: w.result.summary,
    highC: w.result.highC,
    cheapestHotel: [...h.result.hotels].sort((a, b) => a.pricePerNight - b.pricePerNight)[0],
    flight: f.result.flights[0],
    servedBy: { weather: w.provider.agent, hotels: h.provider.agent, flights: f.provider.agent },
  }
})

await node.start()
console.log(`trip-planner serving plan_trip at ${node.url}`)
