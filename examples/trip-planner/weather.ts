// A weather provider. Two run in the demo with different tags: weather-claude and weather-basic.
// The name, tags and style come from the command line: weather.ts <name> <tag,tag> <style>.
import { createMeshNode } from 'mcp-mesh-p2p'
import { Forecast, TripInput, hold, seed } from './shapes.ts'

const [name = 'weather-basic', tags = 'basic', style = 'plain'] = process.argv.slice(2)
const node = createMeshNode({ name })

node.tool('get_weather', {
  capability: 'weather',
  version: style === 'rich' ? '1.2.0' : '1.0.0',
  tags: tags.split(','),
  description: 'Forecast for a destination and dates',
  // A lookup: safe to send to another provider if the first is lost mid-call.
  annotations: { readOnlyHint: true },
  input: TripInput,
  output: Forecast.shape,
}, async ({ destination, dates }) => {
  await hold()
  const highC = 12 + (seed(destination) % 18)
  const summary = style === 'rich'
    ? `${destination}, ${dates}: mostly sunny mornings, a chance of showers after 4 pm, light breeze`
    : `${destination}: sunny`
  return { destination, summary, highC, by: name }
})

await node.start()
console.log(`${name} serving weather at ${node.url}`)
