/**
 * Sliding log: a sorted set of admitted request timestamps, exact over any window of windowMs.
 * Memory grows with the limit (one member per admitted unit of cost). Only admitted requests are
 * logged; a dry run counts with ZCOUNT and writes nothing. A block is the member `!b` with score
 * minus its end time, below every timestamp, so it is never counted.
 */
export const slidingLog = {
  name: 'sliding-log',
  fn: 'sliding_log',
  lua: `
local function sliding_log(key, now_us, limit, window, burst, cost, mode, nonce)
  local now = floor_ms(now_us)
  local floor_score = now - window
  if mode == 3 then
    redis.call('DEL', key)
    redis.call('ZADD', key, rp_int(-(now + cost)), '!b')
    redis.call('PEXPIRE', key, rp_int(cost))
    return {1, 0, now + cost, 0, 0}
  end
  local b = redis.call('ZSCORE', key, '!b')
  if b then
    local blocked = blocked_until(-tonumber(b), now, mode)
    if blocked then return blocked end
    redis.call('ZREM', key, '!b')
  end
  local used = redis.call('ZCOUNT', key, '(' .. rp_int(floor_score), '+inf')
  if mode == 2 then
    local back = math.min(cost, used)
    if back > 0 then redis.call('ZPOPMAX', key, back) end
    return {1, limit - used + back, now + window, 0, 0}
  end
  if used + cost > limit then
    -- The entry whose expiry makes room for this cost.
    local e = redis.call('ZRANGEBYSCORE', key, '(' .. floor_score, '+inf', 'WITHSCORES', 'LIMIT', used + cost - limit - 1, 1)
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    local retry = math.max(1, tonumber(e[2]) + window - now)
    return {0, limit - used, tonumber(newest[2]) + window, retry, 1}
  end
  if mode == 0 and cost > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', rp_int(floor_score))
    -- In chunks: unpack() of a huge table overflows the Lua C stack.
    local score = rp_int(now)
    local i = 1
    while i <= cost do
      local args = {}
      for j = i, math.min(cost, i + 499) do
        args[#args + 1] = score
        args[#args + 1] = nonce .. j
      end
      redis.call('ZADD', key, unpack(args))
      i = i + 500
    end
    redis.call('PEXPIRE', key, rp_int(window))
  end
  return {1, limit - used - cost, now + window, 0, 0}
end
`,
} as const
