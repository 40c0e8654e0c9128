import t from 'tap'
import { suspicionTimeout } from '../../src/topology/suspicion.ts'

const MIN = 1_000
const MAX = 6_000

t.test('no confirmations gives the max', async (t) => {
  t.equal(suspicionTimeout(0, MIN, MAX, 3), MAX)
  t.equal(suspicionTimeout(0, MIN, MAX, 1), MAX)
  t.equal(suspicionTimeout(0, 200, 30_000, 10), 30_000)
  t.equal(suspicionTimeout(-1, MIN, MAX, 3), MAX, 'a negative count is treated as none')
})

t.test('follows max - (max - min) * log(C + 1) / log(K + 1)', async (t) => {
  // C = 1, K = 3: log 2 / log 4 = 1/2
  t.equal(suspicionTimeout(1, MIN, MAX, 3), 3_500)
  // C = 1, K = 1: log 2 / log 2 = 1
  t.equal(suspicionTimeout(1, MIN, MAX, 1), MIN)
  // C = 2, K = 8: log 3 / log 9 = 1/2
  t.equal(suspicionTimeout(2, MIN, MAX, 8), 3_500)
})

t.test('shrinks strictly with each confirmation up to K', async (t) => {
  for (const k of [1, 2, 3, 5, 8, 32]) {
    let prev = suspicionTimeout(0, MIN, MAX, k)
    for (let c = 1; c <= k; c++) {
      const v = suspicionTimeout(c, MIN, MAX, k)
      t.ok(v < prev, `K=${k}: C=${c} (${v}) < C=${c - 1} (${prev})`)
      prev = v
    }
  }
})

t.test('C = K gives exactly the min', async (t) => {
  for (const k of [1, 2, 3, 5, 8, 32]) t.equal(suspicionTimeout(k, MIN, MAX, k), MIN, `K=${k}`)
})

t.test('never below the min, even with more confirmations than expected', async (t) => {
  for (const k of [1, 3, 8]) {
    const values = Array.from({ length: 201 }, (_, c) => suspicionTimeout(c, MIN, MAX, k))
    t.ok(values.every((v) => v >= MIN), `K=${k}: never below min`)
    t.ok(values.every((v, i) => i === 0 || v <= values[i - 1]), `K=${k}: never grows`)
    t.ok(values.slice(k).every((v) => v === MIN), `K=${k}: min from C = K on`)
  }
})

t.test('min equal to max is constant', async (t) => {
  for (let c = 0; c <= 5; c++) t.equal(suspicionTimeout(c, 2_000, 2_000, 3), 2_000)
})
