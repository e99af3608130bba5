/**
 * GCRA (generic cell rate algorithm), the leaky bucket as a meter: one key holding the theoretical
 * arrival time (TAT) in server microseconds. Each unit of cost advances TAT by windowMs/limit; a
 * request is admitted while TAT stays within `burst` intervals of now. O(1) memory, smooth rate.
 * A block is stored in the same key as a negative number: minus the time it ends, in ms.
 */
export const gcra = {
  name: 'gcra',
  fn: 'gcra',
  lua: `
local function gcra(key, now_us, limit, window, burst, cost, mode, nonce)
  local interval = window * 1000 / limit
  local tolerance = burst * interval
  local now = floor_ms(now_us)
  if mode == 3 then
    redis.call('SET', key, rp_int(-(now + cost)), 'PX', rp_int(cost))
    return {1, 0, now + cost, 0, 0}
  end
  local tat = tonumber(redis.call('GET', key)) or now_us
  if tat < 0 then
    if -tat > now then
      if mode == 2 then return {1, 0, -tat, 0, 0} end
      return {0, 0, -tat, -tat - now, 3}
    end
    tat = now_us
  end
  if tat < now_us then tat = now_us end
  if mode == 2 then
    local back = math.max(now_us, tat - cost * interval)
    if back > now_us then
      redis.call('SET', key, fmt(back), 'PX', rp_int(math.max(1, ceil_ms(back - now_us))))
    else
      redis.call('DEL', key)
    end
    return {1, math.floor((tolerance - (back - now_us)) / interval + 1e-9), ceil_ms(back), 0, 0}
  end
  local new_tat = tat + cost * interval
  local diff = new_tat - now_us
  -- Half a microsecond of slack absorbs float rounding in the accumulated TAT.
  if diff > tolerance + 0.5 then
    local remaining = math.max(0, math.floor((tolerance - (tat - now_us)) / interval + 1e-9))
    return {0, remaining, ceil_ms(tat), math.max(1, ceil_ms(diff - tolerance)), 1}
  end
  if mode == 0 and cost > 0 then
    redis.call('SET', key, fmt(new_tat), 'PX', rp_int(math.max(1, ceil_ms(diff))))
  end
  return {1, math.max(0, math.floor((tolerance - diff) / interval + 1e-9)), ceil_ms(new_tat), 0, 0}
end
`,
} as const
