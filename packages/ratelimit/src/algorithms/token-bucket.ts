/**
 * Token bucket: `burst` tokens (default: limit), refilled continuously at limit per windowMs. One
 * hash {t, ts}; refill is computed from the server clock on read, so a denied request writes
 * nothing. The key expires exactly when the bucket would be full again.
 */
export const tokenBucket = {
  name: 'token-bucket',
  fn: 'token_bucket',
  lua: `
local function token_bucket(key, now_us, limit, window, burst, cost, mode, nonce)
  local rate = limit / (window * 1000)
  if mode == 3 then return block_hash(key, floor_ms(now_us), cost) end
  local v = redis.call('HMGET', key, 't', 'ts', 'b')
  local blocked = blocked_until(v[3], floor_ms(now_us), mode)
  if blocked then return blocked end
  local tokens = burst
  if v[1] then
    tokens = math.min(burst, tonumber(v[1]) + math.max(0, now_us - tonumber(v[2])) * rate)
  end
  if mode == 2 then
    if v[1] then
      tokens = math.min(burst, tokens + cost)
      redis.call('HSET', key, 't', fmt(tokens), 'ts', rp_int(now_us))
      redis.call('PEXPIRE', key, rp_int(math.max(1, ceil_ms((burst - tokens) / rate))))
    end
    return {1, math.floor(tokens + 1e-9), ceil_ms(now_us + (burst - tokens) / rate), 0, 0}
  end
  if tokens + 1e-9 < cost then
    return {0, math.floor(tokens + 1e-9), ceil_ms(now_us + (burst - tokens) / rate), math.max(1, ceil_ms((cost - tokens) / rate)), 1}
  end
  tokens = math.max(0, tokens - cost)
  if mode == 0 and cost > 0 then
    redis.call('HSET', key, 't', fmt(tokens), 'ts', rp_int(now_us))
    redis.call('PEXPIRE', key, rp_int(math.max(1, ceil_ms((burst - tokens) / rate))))
  end
  return {1, math.floor(tokens + 1e-9), ceil_ms(now_us + (burst - tokens) / rate), 0, 0}
end
`,
} as const
