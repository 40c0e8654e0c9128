// The shapes the trip-planner agents exchange: declared once, used by providers and consumers.
import { z } from 'zod'

/** What every trip tool takes. */
export const TripInput = { destination: z.string().min(1), dates: z.string().min(1) }

export const Forecast = z.object({ destination: z.string(), summary: z.string(), highC: z.number(), by: z.string() })
export const Hotels = z.object({ hotels: z.array(z.object({ name: z.string(), pricePerNight: z.number() })), by: z.string() })
export const Flights = z.object({ flights: z.array(z.object({ flight: z.string(), departs: z.string() })), by: z.string() })

/** A small deterministic number from a string, so answers differ by destination but not by run. */
export function seed (s: string): number {
  let h = 7
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 997
  return h
}

/**
 * Tests hold calls to observe draining: with TRIP_HOLD=1 a call prints `holding a call` and
 * waits for SIGUSR2 (so a test knows the handler runs, and decides when it ends).
 */
export const hold = async (): Promise<void> => {
  if (process.env.TRIP_HOLD !== '1') return
  const released = new Promise((resolve) => process.once('SIGUSR2', resolve))
  console.log('holding a call')
  await released
}
