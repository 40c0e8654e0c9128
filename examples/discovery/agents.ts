// The example agents of the discovery demo: what each one offers. Calls between them arrive with
// the next milestone; for now they advertise, discover each other and resolve dependencies.
import type { AdvertBody } from '../../src/index.ts'

export const exampleAgents: Record<string, AdvertBody> = {
  'weather-claude': { tools: [{ name: 'get_weather', capability: 'weather', version: '1.2.0', tags: ['claude', 'llm'], description: 'Forecast written by Claude' }] },
  'weather-api': { tools: [{ name: 'get_weather', capability: 'weather', version: '1.0.0', tags: ['api', 'fast'], description: 'Forecast from a weather API' }] },
  hotels: { tools: [{ name: 'find_hotels', capability: 'hotels', version: '2.0.0', tags: ['booking'] }] },
  flights: { tools: [{ name: 'find_flights', capability: 'flights', version: '1.0.0', tags: [] }] },
  'trip-planner': {
    tools: [{ name: 'plan_trip', capability: 'plan_trip', version: '1.0.0', tags: [] }],
    dependencies: [{ capability: 'weather' }, { capability: 'hotels' }, { capability: 'flights' }],
  },
}
