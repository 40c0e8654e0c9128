import { MeshError } from '../errors.ts'
import type { Candidate } from '../topology/resolver.ts'

/** At most this many sessions are pinned per dependency; the least recently used is forgotten first. */
const MAX_SESSIONS = 10_000

/**
 * Session pinning for a dependency declared with `session: true`: calls with the same session key
 * go to the provider that served the session's first call, for as long as the session lives.
 * When that provider is gone the call fails with `MESH_ERR_CALL_SESSION_LOST`: a session is never
 * moved to another provider silently (its state lives there).
 */
export class SessionPins {
  readonly #pins = new Map<string, { peerId: string, agent: string }>()

  /** The candidates a call of `session` may go to: its pinned provider only, once it has one. */
  restrict (session: string, dependency: string, order: Candidate[]): Candidate[] {
    const pin = this.#pins.get(session)
    if (pin === undefined) return order
    const mine = order.filter((c) => c.peerId === pin.peerId)
    if (mine.length === 0) throw SessionPins.lost(session, dependency, pin.agent, 'it is no longer a live provider of the dependency')
    // Re-inserting keeps Map order least recently used first.
    this.#pins.delete(session)
    this.#pins.set(session, pin)
    return mine
  }

  /** Whether `session` is pinned already. */
  pinned (session: string): boolean {
    return this.#pins.has(session)
  }

  /** The session's first call was served by `c`: pin it there. */
  pin (session: string, c: Candidate): void {
    if (this.#pins.has(session)) return
    this.#pins.set(session, { peerId: c.peerId, agent: c.agent })
    if (this.#pins.size > MAX_SESSIONS) this.#pins.delete(this.#pins.keys().next().value as string)
  }

  /** Ends a session: its next call starts a new one, on any provider. */
  end (session: string): void {
    this.#pins.delete(session)
  }

  /** The error of a session whose provider is gone. */
  static lost (session: string, dependency: string, agent: string, why: string): MeshError {
    return new MeshError('MESH_ERR_CALL_SESSION_LOST', `session ${session} of ${dependency} was on ${agent}, and ${why}: its state is gone with it. End the session and start a new one`, {
      details: { dependency, session, provider: agent },
    })
  }
}
