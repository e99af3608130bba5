/**
 * Lua shared by every rate-limit script, its setup (run once per batch of calls). Time comes from
 * the server (TIME, through core's rp_now_us), in microseconds, so clients with skewed clocks still
 * agree, and sub-millisecond intervals stay exact.
 *
 * Every algorithm is a Lua function with one signature:
 *   fn(key, now_us, limit, window_ms, burst, cost, mode, nonce) -> {allowed, remaining, reset_at_ms, retry_after_ms, reason}
 * mode: 0 = consume (writes only when allowed), 1 = dry run (never writes), 2 = reward (gives back `cost`),
 * 3 = block for `cost` ms (replaces the state with a block marker in the same key, so checks need no
 * second key and no extra command).
 * reason: 0 = allowed, 1 = over the limit, 3 = blocked by block().
 * A denied request never writes, so rejections cost nothing.
 */
export const PRELUDE = `
local function ceil_ms(us) return math.ceil(us / 1000) end
local function floor_ms(us) return math.floor(us / 1000) end
-- Numbers go to Redis as text made here (core's rp_int for an integer): Redis would print a number
-- with %.17g, the C library's slow exact float printing.
local function fmt(x)
  if x == math.floor(x) then return rp_int(x) end
  return string.format('%.17g', x)
end
-- Hash-based state keeps a block as field b = until (ms); the key expires with the block.
local function block_hash(key, now, ms)
  redis.call('DEL', key)
  redis.call('HSET', key, 'b', rp_int(now + ms))
  redis.call('PEXPIRE', key, rp_int(ms))
  return {1, 0, now + ms, 0, 0}
end
local function blocked_until(b, now, mode)
  b = tonumber(b)
  if b and b > now and mode ~= 2 then return {0, 0, b, b - now, 3} end
  return nil
end
`

/** Reason codes shared by the Lua scripts and the decoder. */
export const REASONS = ['ok', 'limit', 'cost-exceeds-limit', 'blocked'] as const
export type LuaReason = (typeof REASONS)[number]

export const MODE = { consume: 0, dryRun: 1, reward: 2, block: 3 } as const
