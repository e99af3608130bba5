/**
 * Fixed window: a counter per aligned window (epoch multiples of windowMs). One hash {w, c}; the
 * window id guards against reading the previous window's count in the millisecond it expires.
 * Bursts of up to 2×limit are possible across a window boundary.
 * Expiries are relative (PEXPIRE): a batch's calls share one clock reading, which is older than
 * Redis's own clock by what the calls before took, and Redis 7.0 deletes a key at once when given
 * an absolute expiry already past, losing the count.
 */
export const fixedWindow = {
  name: 'fixed-window',
  fn: 'fixed_window',
  lua: `
local function fixed_window(key, now_us, limit, window, burst, cost, mode, nonce)
  local now = floor_ms(now_us)
  local win = math.floor(now / window)
  local reset_at = (win + 1) * window
  if mode == 3 then return block_hash(key, now, cost) end
  local v = redis.call('HMGET', key, 'w', 'c', 'b')
  local blocked = blocked_until(v[3], now, mode)
  if blocked then return blocked end
  local used = 0
  if tonumber(v[1]) == win then used = tonumber(v[2]) or 0 end
  if mode == 2 then
    if used > 0 then
      used = math.max(0, used - cost)
      redis.call('HSET', key, 'c', fmt(used))
    end
    return {1, limit - used, reset_at, 0, 0}
  end
  if used + cost > limit then
    return {0, limit - used, reset_at, reset_at - now, 1}
  end
  if mode == 0 and cost > 0 then
    if used > 0 then
      -- Same window: the TTL is already set, so one command.
      redis.call('HINCRBY', key, 'c', rp_int(cost))
    else
      redis.call('HSET', key, 'w', rp_int(win), 'c', rp_int(cost))
      redis.call('PEXPIRE', key, rp_int(reset_at - now))
    end
  end
  return {1, limit - used - cost, reset_at, 0, 0}
end
`,
} as const
