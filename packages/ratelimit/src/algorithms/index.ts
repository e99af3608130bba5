import { defineScript } from '@rp/core/kit'
import { fixedWindow } from './fixed-window.js'
import { gcra } from './gcra.js'
import { type LuaReason, PRELUDE, REASONS } from './prelude.js'
import { slidingLog } from './sliding-log.js'
import { slidingWindow } from './sliding-window.js'
import { tokenBucket } from './token-bucket.js'

export const ALGORITHMS = [fixedWindow, slidingWindow, slidingLog, tokenBucket, gcra] as const
export type Algorithm = (typeof ALGORITHMS)[number]['name']
export const ALGORITHM_NAMES: readonly Algorithm[] = ALGORITHMS.map((a) => a.name)

export interface RawDecision {
  allowed: boolean
  remaining: number
  resetAt: number
  retryAfterMs: number
  reason: LuaReason
}

function decodeOne(raw: readonly number[], at: number): RawDecision {
  return {
    allowed: raw[at] === 1,
    remaining: Math.max(0, raw[at + 1]!),
    resetAt: raw[at + 2]!,
    retryAfterMs: raw[at + 3]!,
    reason: REASONS[raw[at + 4]!] ?? 'limit',
  }
}

/**
 * One script per algorithm.
 * KEYS: [state]. ARGV: [mode, cost, limit, windowMs, burst, nonce].
 * Reply: {allowed 0|1, remaining, resetAt ms, retryAfter ms, reason code}.
 */
export const singleScripts = Object.fromEntries(
  ALGORITHMS.map((algorithm) => [
    algorithm.name,
    defineScript<RawDecision>({
      name: `ratelimit.${algorithm.name}`,
      keys: 1,
      setup: `${PRELUDE}${algorithm.lua}`,
      lua: `return ${algorithm.fn}(KEYS[1], rp_now_us(), rp_num(ARGV[3]), rp_num(ARGV[4]), rp_num(ARGV[5]), rp_num(ARGV[2]), rp_num(ARGV[1]), ARGV[6])`,
      decode: (raw) => decodeOne(raw as number[], 0),
    }),
  ]),
) as Record<Algorithm, ReturnType<typeof defineScript<RawDecision>>>

/**
 * All policies of a MultiLimiter in one script, all-or-nothing: every policy is checked as a dry
 * run first, and only if all admit the request are they consumed.
 * KEYS: [state1, state2, ...] (one hash tag). ARGV: [mode, cost, nonce, n,
 * then per policy: algorithm index, limit, windowMs, burst].
 * Reply: n decisions of 5 numbers each, the decision each policy made.
 */
export const multiScript = defineScript<RawDecision[]>({
  name: 'ratelimit.multi',
  keys: 'variadic',
  setup: `${PRELUDE}${ALGORITHMS.map((a) => a.lua).join('')}
local fns = { ${ALGORITHMS.map((a) => a.fn).join(', ')} }`,
  lua: `local now_us = rp_now_us()
local mode = rp_num(ARGV[1])
local cost = rp_num(ARGV[2])
local nonce = ARGV[3]
local n = rp_num(ARGV[4])
local out = {}
local all = true
for i = 1, n do
  local a = 4 + (i - 1) * 4
  local dry = mode
  if mode == 0 then dry = 1 end
  local r = fns[rp_num(ARGV[a + 1])](KEYS[i], now_us, rp_num(ARGV[a + 2]), rp_num(ARGV[a + 3]), rp_num(ARGV[a + 4]), cost, dry, nonce .. ':' .. i .. ':')
  if r[1] == 0 then all = false end
  for j = 1, 5 do out[#out + 1] = r[j] end
end
if mode == 0 and all then
  out = {}
  for i = 1, n do
    local a = 4 + (i - 1) * 4
    local r = fns[rp_num(ARGV[a + 1])](KEYS[i], now_us, rp_num(ARGV[a + 2]), rp_num(ARGV[a + 3]), rp_num(ARGV[a + 4]), cost, 0, nonce .. ':' .. i .. ':')
    for j = 1, 5 do out[#out + 1] = r[j] end
  end
end
return out`,
  decode: (raw) => {
    const values = raw as number[]
    const out: RawDecision[] = []
    for (let i = 0; i < values.length; i += 5) out.push(decodeOne(values, i))
    return out
  },
})

export function algorithmIndex(name: Algorithm): number {
  return ALGORITHM_NAMES.indexOf(name) + 1
}
