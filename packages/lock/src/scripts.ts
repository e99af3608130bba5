import { defineScript } from '@rp/core/kit'

const NOW = `local now_us = rp_now_us()
local now = rp_now_ms()`

/**
 * Hands a free lock to the earliest-deadline live waiter: pops it from the queue, reserves the
 * lock hash for it (`r`) for the grace period, and wakes it by its owner id. KEYS[1] lock hash,
 * KEYS[2] queue; ARGV[2] channel, ARGV[3] grace ms. The lock hash must hold no owner.
 * The reservation keeps the waiter flag (`w`, see acquire): others may still be queued.
 */
const HANDOFF = `redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', rp_int(rp_now_ms()))
  local next = redis.call('ZRANGE', KEYS[2], 0, 0)
  if next[1] then
    redis.call('ZREM', KEYS[2], next[1])
    redis.call('HSET', KEYS[1], 'r', next[1], 'w', '1')
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('PUBLISH', ARGV[2], next[1])
  end
end`

/**
 * KEYS: [lock hash, fence counter, waiter queue] (same hash tag).
 * ARGV: [owner, ttlMs, reentrant 0|1, fenceTtlMs, queue deadline ms or 0, acquire-call id,
 * 1 if an earlier attempt of this call may have queued it, else 0].
 * Reply: {1, token, expiresAt ms} when acquired, {0, ms until it may be free} otherwise.
 *
 * The fencing token is max(last token, now µs) + 1, written back to the counter: strictly
 * increasing per resource while the counter lives, and still larger than every earlier token after
 * the counter expires (as long as the server clock does not run backwards), so the counter needs
 * no eternal key. The clock is nearly always ahead of the counter, so the write goes first, with
 * GET: one command, where GET then SET took two, and a second SET only when the counter was ahead
 * (an acquire of the same resource earlier in this batch, or a clock that stepped back). Both are
 * decimal integers, so comparing their lengths, then their text, compares them as numbers; a value
 * this script did not write (not a plain decimal integer below 2^53) is overwritten.
 * A caller that passes a deadline joins the waiter queue when it fails, and flags the lock hash
 * (`w`), so that a release looks at the queue only when someone queued: most have nobody waiting,
 * and the flag saves them a command. A hash that expires (its holder, or a woken waiter, died)
 * takes its flag along: its waiters learn of the next holder on their next retry (at the hint, at
 * most a second apart), and queue and flag again. A lock that a release
 * reserved for a woken waiter (`r`) is free only to that waiter until the reservation lapses, so a
 * retry on a backoff timer cannot jump the queue.
 */
export const acquireScript = defineScript<[number, number, number?]>({
  name: 'lock.acquire',
  keys: 3,
  lua: `${NOW}
local held = redis.call('HMGET', KEYS[1], 'o', 'r', 'n', 'w')
local owner, reserved = held[1], held[2]
-- A retry of the same acquire call (its reply was lost): it already holds the lock.
-- An owner already holding it (a retry, or a reentrant acquire) only lengthens the TTL: a shorter
-- one would cut short the hold that an outer holder's watchdog is renewing on its own schedule.
local function longer()
  local ttl, left = rp_num(ARGV[2]), redis.call('PTTL', KEYS[1])
  if left < ttl then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    left = ttl
  end
  return {1, tonumber(redis.call('HGET', KEYS[1], 't')), now + left}
end
if owner and owner == ARGV[1] and held[3] == ARGV[6] then return longer() end
if owner and owner == ARGV[1] and ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], 'c', 1)
  return longer()
end
if owner or (reserved and reserved ~= ARGV[1]) then
  local deadline = tonumber(ARGV[5])
  if deadline > 0 then
    redis.call('ZADD', KEYS[3], 'NX', rp_int(now + deadline), ARGV[1])
    if redis.call('PTTL', KEYS[3]) < deadline then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
    if not held[4] then redis.call('HSET', KEYS[1], 'w', '1') end
  end
  return {0, math.max(1, redis.call('PTTL', KEYS[1]))}
end
local token = now_us + 1
local text = rp_int(token)
local last = redis.call('SET', KEYS[2], text, 'PX', ARGV[4], 'GET')
-- Only a plain decimal integer (the text this script writes) compares as a number by length and
-- text; anything else ('-5', '007', '1e15', '0xff') is no token of ours, and is overwritten.
if last and (#last > #text or (#last == #text and last >= text)) and string.find(last, '^[1-9]%d*$') then
  local n = tonumber(last)
  if n < 2 ^ 53 then
    token = n + 1
    text = rp_int(token)
    redis.call('SET', KEYS[2], text, 'PX', ARGV[4])
  end
end
-- A caller that may have queued leaves the queue, and flags its hold if others are still queued.
local flag = reserved
if ARGV[7] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  if redis.call('EXISTS', KEYS[3]) == 1 then flag = true end
end
if reserved then redis.call('DEL', KEYS[1]) end
if flag then
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'c', '1', 't', text, 'n', ARGV[6], 'w', '1')
else
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'c', '1', 't', text, 'n', ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, token, now + rp_num(ARGV[2])}`,
})

/**
 * KEYS: [lock hash, waiter queue]. ARGV: [owner, release channel, hand-off grace ms].
 * Reply: 'released' | 'expired' | 'not-owner'. A reentrant hold is released when its count
 * reaches 0; only then is the lock handed to the next live waiter.
 */
export const releaseScript = defineScript<'released' | 'expired' | 'not-owner'>({
  name: 'lock.release',
  flags: ['allow-oom'],
  keys: 2,
  lua: `
local held = redis.call('HMGET', KEYS[1], 'o', 'c', 'w')
if not held[1] then return 'expired' end
if held[1] ~= ARGV[1] then return 'not-owner' end
-- A reentrant hold counts down; the last (or only) release frees the lock.
if held[2] ~= '1' and redis.call('HINCRBY', KEYS[1], 'c', -1) > 0 then return 'released' end
-- Nobody queued while it was held (no flag): nobody to hand it to.
if not held[3] then
  redis.call('DEL', KEYS[1])
  return 'released'
end
${HANDOFF}
return 'released'`,
})

/**
 * KEYS: [lock hash, waiter queue]. ARGV: [owner, release channel, hand-off grace ms]. A waiter
 * that gives up leaves the queue, and passes on a reservation it was woken for but never used.
 */
export const abandonScript = defineScript<number>({
  name: 'lock.abandon',
  flags: ['allow-oom'],
  keys: 2,
  lua: `
redis.call('ZREM', KEYS[2], ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'o', 'r')
if held[1] or held[2] ~= ARGV[1] then return 0 end
${HANDOFF}
return 1`,
})

/** KEYS: [lock hash]. ARGV: [owner, ttlMs]. Reply: new expiresAt ms, or 0 if no longer held. */
export const extendScript = defineScript<number>({
  name: 'lock.extend',
  flags: ['allow-oom'],
  keys: 1,
  lua: `${NOW}
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return now + rp_num(ARGV[2])`,
})

/**
 * Wakes, by id, the waiters of a read-write lock that can go now: with no writer holding and no
 * reader holding, the earliest waiting writer (writer-preferring); with no writer waiting, every
 * waiting reader. Nobody else is woken, so waiters cost nothing between releases. KEYS[1..4]:
 * readers, writer, writer intents, waiter queue (members 'r'..id and 'w'..id, score = deadline);
 * ARGV[3] channel. Needs `now`.
 */
const RW_WAKE = `
local function wake()
  if redis.call('EXISTS', KEYS[4]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then return end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local waiting = redis.call('ZRANGE', KEYS[4], 0, -1)
  local readers_hold = redis.call('ZCARD', KEYS[1]) > 0
  -- A woken waiter is popped, so one that died is woken once, not on every release until its
  -- deadline; a live one that loses the race rejoins the queue on its retry.
  for _, m in ipairs(waiting) do
    if string.sub(m, 1, 1) == 'w' then
      if not readers_hold then
        redis.call('ZREM', KEYS[4], m)
        redis.call('PUBLISH', ARGV[3], string.sub(m, 2))
      end
      return
    end
  end
  for _, m in ipairs(waiting) do
    redis.call('ZREM', KEYS[4], m)
    redis.call('PUBLISH', ARGV[3], string.sub(m, 2))
  end
end
`

/**
 * Read-write lock, writer-preferring. KEYS: [readers zset, writer string, writer intents zset,
 * waiter queue zset]. ARGV: ['r'|'w', id, ttlMs, intentMs, queue deadline ms or 0].
 * Reply: {1, expiresAt} or {0, retry hint ms}. A waiting writer's intent blocks new readers, so a
 * stream of readers cannot starve it; the intent lapses after intentMs unless the writer retries.
 * A caller with a deadline joins the waiter queue, and a release wakes it by id when it can go.
 */
export const rwAcquireScript = defineScript<[number, number]>({
  name: 'lock.rw.acquire',
  keys: 4,
  lua: `${NOW}
local mode, id, ttl, deadline = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local writer_ttl = redis.call('PTTL', KEYS[2])
local function queue(hint)
  if deadline > 0 then
    redis.call('ZADD', KEYS[4], 'NX', now + deadline, mode .. id)
    if redis.call('PTTL', KEYS[4]) < deadline then redis.call('PEXPIRE', KEYS[4], deadline) end
  end
  return {0, math.max(1, hint)}
end
-- A retry of an acquire whose reply was lost: it already holds.
local mine = redis.call('ZSCORE', KEYS[1], id)
if mode == 'r' and mine then return {1, tonumber(mine)} end
if mode == 'w' and redis.call('GET', KEYS[2]) == id then return {1, now + writer_ttl} end
if mode == 'r' then
  if writer_ttl > 0 then return queue(writer_ttl) end
  local intent = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  if intent[1] then return queue(tonumber(intent[2]) - now) end
  redis.call('ZADD', KEYS[1], now + ttl, id)
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  if deadline > 0 then redis.call('ZREM', KEYS[4], 'r' .. id) end
  return {1, now + ttl}
end
local intent = tonumber(ARGV[4])
if writer_ttl > 0 or redis.call('ZCARD', KEYS[1]) > 0 then
  redis.call('ZADD', KEYS[3], now + intent, id)
  if redis.call('PTTL', KEYS[3]) < intent then redis.call('PEXPIRE', KEYS[3], intent) end
  local hint = writer_ttl
  if hint <= 0 then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    hint = tonumber(first[2]) - now
  end
  return queue(hint)
end
redis.call('ZREM', KEYS[3], id)
redis.call('SET', KEYS[2], id, 'PX', ttl)
if deadline > 0 then redis.call('ZREM', KEYS[4], 'w' .. id) end
return {1, now + ttl}`,
})

/**
 * KEYS: [readers zset, writer string, writer intents, waiter queue]. ARGV: ['r'|'w', id, channel].
 * Reply: 1 if it was held. Wakes exactly the waiters that can go now.
 */
export const rwReleaseScript = defineScript<number>({
  name: 'lock.rw.release',
  keys: 4,
  flags: ['allow-oom'],
  lua: `${NOW}${RW_WAKE}
local held = 0
if ARGV[1] == 'r' then
  held = redis.call('ZREM', KEYS[1], ARGV[2])
elseif redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  held = 1
end
if held == 1 then wake() end
return held`,
})

/**
 * KEYS: as release. ARGV: ['r'|'w', id, channel]. A waiter that gives up leaves the queue and, a
 * writer, withdraws its intent, waking the readers it was holding back.
 */
export const rwAbandonScript = defineScript<number>({
  name: 'lock.rw.abandon',
  keys: 4,
  flags: ['allow-oom'],
  lua: `${NOW}${RW_WAKE}
redis.call('ZREM', KEYS[4], ARGV[1] .. ARGV[2])
if ARGV[1] == 'w' and redis.call('ZREM', KEYS[3], ARGV[2]) == 1 then wake() end
return 1`,
})

/** KEYS: [readers zset, writer string]. ARGV: ['r'|'w', id, ttlMs]. Reply: new expiresAt or 0. */
export const rwExtendScript = defineScript<number>({
  name: 'lock.rw.extend',
  flags: ['allow-oom'],
  keys: 2,
  lua: `${NOW}
local ttl = tonumber(ARGV[3])
if ARGV[1] == 'r' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if not score or tonumber(score) <= now then return 0 end
  redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[2])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return now + ttl
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[2], ttl)
return now + ttl`,
})

/** Redlock, per instance. KEYS: [lock]. ARGV: [value]. Deletes only our own value. */
export const redlockReleaseScript = defineScript<number>({
  name: 'lock.redlock.release',
  flags: ['allow-oom'],
  keys: 1,
  lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
})

/** Redlock, per instance. KEYS: [lock]. ARGV: [value, ttlMs]. */
export const redlockExtendScript = defineScript<number>({
  name: 'lock.redlock.extend',
  flags: ['allow-oom'],
  keys: 1,
  lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`,
})
