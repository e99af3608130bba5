import { defineScript } from '@rp/core/kit'

/*
 * A session is one hash. Fields starting with '@' are the store's own; a field '.name' holds the
 * encoded top-level data field `name`, so writers of different fields never overwrite each other.
 *   @u user id   @c createdAt   @l lastSeenAt   @e expiresAt   @a absoluteExpiresAt   @v version
 *   @i idle TTL (ms)   @z bytes of data   @m device meta (JSON)   @x tombstone (only field left after destroy)
 * Every time is the server's clock in ms. The key's TTL is always exactly @e (PEXPIREAT), so the
 * stored expiry and the TTL never disagree.
 */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// New expiry of a live session on activity: now + idle, never past the absolute cap.
const ROLL = `
local function roll(k, now, idle, cap)
  local e = math.min(now + idle, cap)
  redis.call('HSET', k, '@l', now, '@e', e)
  redis.call('PEXPIREAT', k, e)
  return e
end
`

/**
 * KEYS[1] session. ARGV[1] touch ('1' rolls the idle expiry), ARGV[2] touchAfterMs, ARGV[3] idle
 * TTL for this touch ('' = the session's own).
 * Reply: the hash as a flat array, or nil for no live session (missing, destroyed or expired).
 * allow-oom: a touch rewrites two fixed-size fields and a TTL, so reads keep working at maxmemory.
 */
export const getScript = defineScript<string[] | null>({
  name: 'session.get',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}${ROLL}
local k = KEYS[1]
local m = redis.call('HMGET', k, '@e', '@a', '@l', '@i')
if not m[1] then return false end
if tonumber(m[1]) <= now then
  redis.call('DEL', k)
  return false
end
if ARGV[1] == '1' and now - tonumber(m[3]) >= tonumber(ARGV[2]) then
  roll(k, now, ARGV[3] ~= '' and tonumber(ARGV[3]) or tonumber(m[4]), tonumber(m[2]))
end
return redis.call('HGETALL', k)
`,
})

/**
 * KEYS[1] session. ARGV[1] touchAfterMs, ARGV[2] idle TTL for this touch ('' = the session's own).
 * Reply: the new expiresAt, the current one when throttled by touchAfterMs, or nil when there is no
 * live session: a touch never creates or revives one.
 */
export const touchScript = defineScript<number | null>({
  name: 'session.touch',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}${ROLL}
local k = KEYS[1]
local m = redis.call('HMGET', k, '@e', '@a', '@l', '@i')
if not m[1] or tonumber(m[1]) <= now then return false end
if now - tonumber(m[3]) < tonumber(ARGV[1]) then return tonumber(m[1]) end
return roll(k, now, ARGV[2] ~= '' and tonumber(ARGV[2]) or tonumber(m[4]), tonumber(m[2]))
`,
  decode: (raw) => (raw === null ? null : Number(raw)),
})

/**
 * Creates or changes a session in one step, so a concurrent destroy, expiry or writer is seen.
 * KEYS[1] session.
 * ARGV[1] mode: 'create' (fails if it exists), 'upsert' (creates if missing), 'merge' (only a live
 *   session), 'replace' (only a live session; data fields not written are removed).
 * ARGV[2] expected version ('' = any). ARGV[3] '1' to roll the idle expiry. ARGV[4] idle TTL for this
 * write ('' = the session's own). ARGV[5] maxBytes. ARGV[6] idle TTL of a new session.
 * ARGV[7] absolute TTL of a new session (ms from now). ARGV[8] absolute expiry of a new session
 * (epoch ms, '' = now + ARGV[7]). ARGV[9] createdAt of a new session ('' = now). ARGV[10] user id.
 * ARGV[11] meta JSON. ARGV[12] n, then n pairs field, value to set, then fields to delete.
 * Reply: {'ok', version, expiresAt, absoluteExpiresAt, now, createdAt} | {'gone'} (tombstone) |
 * {'missing'} | {'exists'} | {'conflict', version} | {'too-large', bytes}.
 */
export const writeScript = defineScript<Array<string | number>>({
  name: 'session.write',
  keys: 1,
  lua: `${NOW}
local k = KEYS[1]
local mode = ARGV[1]
local m = redis.call('HMGET', k, '@e', '@a', '@v', '@z', '@x', '@i', '@c')
if m[5] then return {'gone'} end
local live = m[1] and tonumber(m[1]) > now
local n = tonumber(ARGV[12])
local first_del = 13 + 2 * n
if not live then
  if m[1] then redis.call('DEL', k) end
  if mode ~= 'create' and mode ~= 'upsert' then return {'missing'} end
  if ARGV[2] ~= '' then return {'missing'} end
  local size = 0
  local args = {}
  for i = 13, 12 + 2 * n, 2 do
    size = size + #ARGV[i + 1]
    args[#args + 1] = ARGV[i]
    args[#args + 1] = ARGV[i + 1]
  end
  if size > tonumber(ARGV[5]) then return {'too-large', size} end
  local idle = tonumber(ARGV[6])
  local cap = ARGV[8] ~= '' and tonumber(ARGV[8]) or now + tonumber(ARGV[7])
  local created = ARGV[9] ~= '' and tonumber(ARGV[9]) or now
  local e = math.min(now + (ARGV[4] ~= '' and tonumber(ARGV[4]) or idle), cap)
  if e <= now then return {'missing'} end
  redis.call('HSET', k, '@u', ARGV[10], '@c', created, '@l', now, '@e', e, '@a', cap, '@v', 1,
    '@i', idle, '@z', size, '@m', ARGV[11], unpack(args))
  redis.call('PEXPIREAT', k, e)
  return {'ok', 1, e, cap, now, created}
end
if mode == 'create' then return {'exists'} end
local version = tonumber(m[3])
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then return {'conflict', version} end
local size = tonumber(m[4])
local writing = {}
local args = {}
for i = 13, 12 + 2 * n, 2 do
  writing[ARGV[i]] = true
  size = size - redis.call('HSTRLEN', k, ARGV[i]) + #ARGV[i + 1]
  args[#args + 1] = ARGV[i]
  args[#args + 1] = ARGV[i + 1]
end
local dels = {}
for i = first_del, #ARGV do
  if not writing[ARGV[i]] then dels[#dels + 1] = ARGV[i] end
end
if mode == 'replace' then
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 1) == '.' and not writing[f] then dels[#dels + 1] = f end
  end
end
for _, f in ipairs(dels) do size = size - redis.call('HSTRLEN', k, f) end
if size > tonumber(ARGV[5]) then return {'too-large', size} end
if #dels > 0 then redis.call('HDEL', k, unpack(dels)) end
version = version + 1
args[#args + 1] = '@v'
args[#args + 1] = version
args[#args + 1] = '@z'
args[#args + 1] = size
local e = tonumber(m[1])
local cap = tonumber(m[2])
if ARGV[3] == '1' then
  e = math.min(now + (ARGV[4] ~= '' and tonumber(ARGV[4]) or tonumber(m[6])), cap)
  args[#args + 1] = '@l'
  args[#args + 1] = now
  args[#args + 1] = '@e'
  args[#args + 1] = e
end
redis.call('HSET', k, unpack(args))
if ARGV[3] == '1' then redis.call('PEXPIREAT', k, e) end
return {'ok', version, e, cap, now, tonumber(m[7])}
`,
})

/**
 * Ends a session and leaves a tombstone, so no write in flight (an update, a touch, a framework's
 * end-of-request save) can bring it back. KEYS[1] session. ARGV[1] tombstone TTL (ms).
 * ARGV[2] '1' to return the session's fields (regenerate moves them to a new id).
 * Reply: nil when there was no live session; else the user id, or the hash as a flat array.
 * allow-oom: logging out must work when Redis is full; the tombstone is smaller than the session.
 */
export const destroyScript = defineScript<string | string[] | null>({
  name: 'session.destroy',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}
local k = KEYS[1]
local m = redis.call('HMGET', k, '@e', '@u')
local reply = false
if m[1] and tonumber(m[1]) > now then
  if ARGV[2] == '1' then reply = redis.call('HGETALL', k) else reply = m[2] end
end
redis.call('DEL', k)
redis.call('HSET', k, '@x', 1)
redis.call('PEXPIRE', k, ARGV[1])
return reply
`,
})

/**
 * A user's index of sessions: handles scored by their absolute expiry, so entries past it are
 * trimmed in the same call, and the key's TTL is the latest expiry in it.
 * KEYS[1] index. ARGV[1] 'add' or 'remove'; for 'add' ARGV[2] handle, ARGV[3] its absolute expiry
 * (epoch ms, or '' for now + ARGV[4] ms); for 'remove' ARGV[2..] handles.
 * Reply: the handles left, with their expiries, as a flat array.
 * allow-oom: "log out everywhere" must finish when Redis is full; an entry is a few dozen bytes, and
 * the session it indexes is written by a script that is refused at maxmemory.
 */
export const indexScript = defineScript<string[]>({
  name: 'session.index',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}
local k = KEYS[1]
redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
if ARGV[1] == 'add' then
  redis.call('ZADD', k, ARGV[3] ~= '' and ARGV[3] or now + tonumber(ARGV[4]), ARGV[2])
elseif #ARGV > 1 then
  redis.call('ZREM', k, unpack(ARGV, 2))
end
local all = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
if #all == 0 then
  redis.call('DEL', k)
else
  redis.call('PEXPIREAT', k, all[#all])
end
return all
`,
})
