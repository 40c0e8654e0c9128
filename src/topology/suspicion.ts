/**
 * Lifeguard's suspicion timeout: it starts at `max` and shrinks towards `min` as independent
 * members confirm the suspicion, so a true failure is declared fast while a single liar (or a
 * single slow observer) has to wait the full `max`, long enough for the suspect to refute.
 *
 *   timeout(C) = max(min, max - (max - min) * log(C + 1) / log(K + 1))
 *
 * C is the number of confirmations beyond the first suspecter, K the confirmations expected.
 */
export function suspicionTimeout (confirmations: number, min: number, max: number, expected: number): number {
  if (confirmations <= 0) return max
  const frac = Math.log(confirmations + 1) / Math.log(expected + 1)
  return Math.max(min, Math.floor(max - (max - min) * frac))
}
