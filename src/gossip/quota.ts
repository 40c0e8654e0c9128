import type { Clock } from '../clock.ts'

/** Options of a quota. */
export interface QuotaInit {
  clock: Clock
  perMinute: number
  burst: number
  /** Keys remembered at most (least recently used forgotten first). */
  maxKeys?: number
}

/** Token buckets per key (a peer ID): `perMinute` tokens a minute, at most `burst` saved up. */
export class Quota {
  readonly #buckets = new Map<string, { tokens: number, at: number }>()
  readonly #init: QuotaInit

  constructor (init: QuotaInit) {
    this.#init = init
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take (key: string): boolean {
    const { clock, perMinute, burst, maxKeys = 10_000 } = this.#init
    const now = clock.now()
    let b = this.#buckets.get(key)
    if (b === undefined) {
      b = { tokens: burst, at: now }
      if (this.#buckets.size >= maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!)
    } else {
      this.#buckets.delete(key) // re-insert: Map order is the LRU order
      b.tokens = Math.min(burst, b.tokens + (now - b.at) * perMinute / 60_000)
      b.at = now
    }
    this.#buckets.set(key, b)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  /** How long until `key` has a token again, in ms (0 when it has one now). */
  wait (key: string): number {
    const b = this.#buckets.get(key)
    if (b === undefined) return 0
    const { clock, perMinute, burst } = this.#init
    const tokens = Math.min(burst, b.tokens + (clock.now() - b.at) * perMinute / 60_000)
    return tokens >= 1 ? 0 : Math.ceil((1 - tokens) * 60_000 / perMinute)
  }
}
