/**
 * Sliding window, the weighted two-counter approximation (Cloudflare's): the previous window's
 * count weighted by how much of it still overlaps the sliding window, plus the current count.
 * O(1) memory: one hash {w, c, p}. Only admitted requests are counted. Expiries are relative, as
 * in the fixed window (see there).
 */
export const slidingWindow = {
  name: 'sliding-window',
  fn: 'sliding_window',
  lua: `
local function sliding_window(key, now_us, limit, window, burst, cost, mode, nonce)
  local now = floor_ms(now_us)
  local win = math.floor(now / window)
  if mode == 3 then return block_hash(key, now, cost) end
  local v = redis.call('HMGET', key, 'w', 'c', 'p', 'b')
  local blocked = blocked_until(v[4], now, mode)
  if blocked then return blocked end
  local w = tonumber(v[1])
  local cur, prev = 0, 0
  if w == win then
    cur = tonumber(v[2]) or 0
    prev = tonumber(v[3]) or 0
  elseif w == win - 1 then
    prev = tonumber(v[2]) or 0
  end
  local elapsed = now - win * window
  local used = prev * (window - elapsed) / window + cur
  local reset_at = now
  if cur > 0 then reset_at = (win + 2) * window elseif prev > 0 then reset_at = (win + 1) * window end
  if mode == 2 then
    if w ~= nil then
      local back = math.min(cur, cost)
      cur = cur - back
      prev = math.max(0, prev - (cost - back))
      redis.call('HSET', key, 'w', rp_int(win), 'c', fmt(cur), 'p', fmt(prev))
      -- Rewriting w = win promises the key lives to the end of the next window, like a consume.
      redis.call('PEXPIRE', key, rp_int((win + 2) * window - now))
    end
    return {1, math.floor(limit - (prev * (window - elapsed) / window + cur)), reset_at, 0, 0}
  end
  if used + cost > limit then
    local retry
    if cur + cost <= limit then
      -- Wait until the previous window's weight has decayed enough.
      local weight = (limit - cur - cost) / prev
      retry = math.ceil(window * (1 - weight) - elapsed)
    else
      -- Wait for the next window, then for this window's count (by then "previous") to decay.
      retry = (win + 1) * window - now + math.ceil(window * (1 - (limit - cost) / cur))
    end
    if retry < 1 then retry = 1 end
    return {0, math.max(0, math.floor(limit - used)), reset_at, retry, 1}
  end
  if mode == 0 and cost > 0 then
    if w == win then
      -- Same window: the TTL already runs to the end of the next window, so one command.
      redis.call('HINCRBY', key, 'c', rp_int(cost))
    else
      redis.call('HSET', key, 'w', rp_int(win), 'c', fmt(cur + cost), 'p', fmt(prev))
      redis.call('PEXPIRE', key, rp_int((win + 2) * window - now))
    end
    reset_at = (win + 2) * window
  end
  return {1, math.floor(limit - used - cost), reset_at, 0, 0}
end
`,
} as const
