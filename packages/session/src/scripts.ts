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

// One HMGET of the store's own fields. Reply: nil for no key (or a tombstone: x is set), else
// m[1..7] = e, a, l, i, v, z, c as numbers (or nil where a hash this store did not write lacks
// them), with m.x the tombstone mark and m.own how many of the store's fields are present. A key
// of another type fails here with WRONGTYPE: a data error the client reports for that key.
const META = `
local OWN = {'@e', '@a', '@l', '@i', '@v', '@z', '@c', '@u', '@m', '@x'}
local function meta(k)
  local raw = redis.call('HMGET', k, unpack(OWN))
  local own = 0
  for i = 1, 10 do
    if raw[i] then own = own + 1 end
  end
  if own == 0 then return nil end
  local m = {x = raw[10], own = own}
  for i = 1, 7 do m[i] = tonumber(raw[i]) end
  m.valid = m[1] and m[2] and m[3] and m[4] and m[5] and m[6] and m[7]
  return m
end
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
 * Reads a session in one HGETALL, and with ARGV[1] = '1' rolls its idle expiry.
 * KEYS[1] session. ARGV[1] touch, ARGV[2] touchAfterMs, ARGV[3] idle TTL for this touch ('' = the
 * session's own). The data fields come back as pairs, never spliced here: joining 1 KiB of
 * strings in Lua cost Redis more than the whole read (a get at 27 µs of Redis time, 17 without),
 * and the client joins them for the JSON codec at a fraction of that.
 * Reply: nil for no live session (missing, destroyed or expired); {'corrupt'} for a key this store
 * did not write; else {'p', createdAt, lastSeenAt, expiresAt, absoluteExpiresAt, version, idle,
 * user id or '', meta or '', then name, value pairs}.
 * A key of another type is refused by HGETALL (WRONGTYPE): a data error the client reports.
 * allow-oom: a touch rewrites two fixed-size fields and a TTL, so reads keep working at maxmemory.
 */
export const getScript = defineScript<Array<string | number> | null>({
  name: 'session.get',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}
local k = KEYS[1]
local all = redis.call('HGETALL', k)
if #all == 0 then return false end
local f = {}
local data = {}
for i = 1, #all, 2 do
  local name = all[i]
  if string.byte(name, 1) == 46 then
    data[#data + 1] = name
    data[#data + 1] = all[i + 1]
  else
    f[name] = all[i + 1]
  end
end
if f['@x'] then return false end
local e, cap, seen, idle = tonumber(f['@e']), tonumber(f['@a']), tonumber(f['@l']), tonumber(f['@i'])
local created, version = tonumber(f['@c']), tonumber(f['@v'])
if not (e and cap and seen and idle and created and version) then return {'corrupt'} end
if e <= now then
  redis.call('DEL', k)
  return false
end
if ARGV[1] == '1' and now - seen >= tonumber(ARGV[2]) then
  seen = now
  e = math.min(now + (ARGV[3] ~= '' and tonumber(ARGV[3]) or idle), cap)
  redis.call('HSET', k, '@l', seen, '@e', e)
  redis.call('PEXPIREAT', k, e)
end
local reply = {'p', created, seen, e, cap, version, idle, f['@u'] or '', f['@m'] or ''}
for i = 1, #data do reply[9 + i] = data[i] end
return reply
`,
})

/**
 * KEYS[1] session. ARGV[1] touchAfterMs, ARGV[2] idle TTL for this touch ('' = the session's own).
 * Reply: the new expiresAt, the current one when throttled by touchAfterMs, nil when there is no
 * live session (a touch never creates or revives one), or -1 for a hash this store did not write.
 */
export const touchScript = defineScript<number | null>({
  name: 'session.touch',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}${META}${ROLL}
local k = KEYS[1]
local m = meta(k)
if not m or m.x then return false end
if not m.valid then return -1 end
if m[1] <= now then return false end
if now - m[3] < tonumber(ARGV[1]) then return m[1] end
return roll(k, now, ARGV[2] ~= '' and tonumber(ARGV[2]) or m[4], m[2])
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
 * ARGV[13] most data fields a session may hold (after ARGV[12]'s pairs and deletions: see FIRST).
 * Size (@z) counts field names and values. Data values are never empty (encoded JSON, or a
 * codec's output, checked non-empty), so HSTRLEN > 0 means the field exists.
 * Reply: {'ok', version, expiresAt, absoluteExpiresAt, now, createdAt} | {'gone'} (tombstone) |
 * {'missing'} | {'exists'} | {'conflict', version} | {'too-large', bytes} | {'too-many', fields} |
 * {'corrupt'}.
 */
export const writeScript = defineScript<Array<string | number>>({
  name: 'session.write',
  keys: 1,
  lua: `${NOW}${META}
local k = KEYS[1]
local mode = ARGV[1]
local n = tonumber(ARGV[12])
local max_fields = tonumber(ARGV[13])
local FIRST = 14
local first_del = FIRST + 2 * n
local m = meta(k)
if m and m.x then return {'gone'} end
if m and not m.valid then return {'corrupt'} end
-- None of the store's fields, yet a key: a hash (or another type) someone else wrote.
if not m and redis.call('EXISTS', k) == 1 then return {'corrupt'} end
if not m or m[1] <= now then
  if m then redis.call('DEL', k) end
  if mode ~= 'create' and mode ~= 'upsert' then return {'missing'} end
  if ARGV[2] ~= '' then return {'missing'} end
  if n > max_fields then return {'too-many', n} end
  local size = 0
  local args = {}
  for i = FIRST, FIRST + 2 * n - 1, 2 do
    size = size + #ARGV[i] + #ARGV[i + 1]
    args[#args + 1] = ARGV[i]
    args[#args + 1] = ARGV[i + 1]
  end
  if size > tonumber(ARGV[5]) then return {'too-large', size} end
  local idle = tonumber(ARGV[6])
  local cap = ARGV[8] ~= '' and tonumber(ARGV[8]) or now + tonumber(ARGV[7])
  local created = ARGV[9] ~= '' and tonumber(ARGV[9]) or now
  local e = math.min(now + (ARGV[4] ~= '' and tonumber(ARGV[4]) or idle), cap)
  if e <= now then return {'missing'} end
  -- An anonymous session (a framework's) has no user and no meta: fewer fields, less to read.
  if ARGV[10] ~= '' then
    args[#args + 1] = '@u'
    args[#args + 1] = ARGV[10]
  end
  if ARGV[11] ~= '{}' then
    args[#args + 1] = '@m'
    args[#args + 1] = ARGV[11]
  end
  redis.call('HSET', k, '@c', created, '@l', now, '@e', e, '@a', cap, '@v', 1, '@i', idle, '@z', size,
    unpack(args))
  redis.call('PEXPIREAT', k, e)
  return {'ok', 1, e, cap, now, created}
end
if mode == 'create' then return {'exists'} end
local version = m[5]
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then return {'conflict', version} end
local size = m[6]
local count = 0
local writing = {}
local args = {}
local function stored(f)
  local len = redis.call('HSTRLEN', k, f)
  if len > 0 then return #f + len end
  return 0
end
for i = FIRST, FIRST + 2 * n - 1, 2 do
  writing[ARGV[i]] = true
  local old = stored(ARGV[i])
  if old == 0 then count = count + 1 end
  size = size - old + #ARGV[i] + #ARGV[i + 1]
  args[#args + 1] = ARGV[i]
  args[#args + 1] = ARGV[i + 1]
end
local dels = {}
if mode == 'replace' then
  -- Every data field not written goes; the session holds at most max_fields, so HKEYS is bounded.
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 1) == '.' and not writing[f] then dels[#dels + 1] = f end
  end
else
  for i = first_del, #ARGV do
    if not writing[ARGV[i]] then dels[#dels + 1] = ARGV[i] end
  end
end
local removed = 0
for _, f in ipairs(dels) do
  local old = stored(f)
  if old > 0 then removed = removed + 1 end
  size = size - old
end
if size > tonumber(ARGV[5]) then return {'too-large', size} end
-- Fields after the write: those there now (HLEN less the store's own), plus new, less removed.
local fields = redis.call('HLEN', k) - m.own + count - removed
if count > 0 and fields > max_fields then return {'too-many', fields} end
if #dels > 0 then redis.call('HDEL', k, unpack(dels)) end
version = version + 1
args[#args + 1] = '@v'
args[#args + 1] = version
args[#args + 1] = '@z'
args[#args + 1] = size
local e = m[1]
local cap = m[2]
if ARGV[3] == '1' then
  e = math.min(now + (ARGV[4] ~= '' and tonumber(ARGV[4]) or m[4]), cap)
  args[#args + 1] = '@l'
  args[#args + 1] = now
  args[#args + 1] = '@e'
  args[#args + 1] = e
end
redis.call('HSET', k, unpack(args))
if ARGV[3] == '1' then redis.call('PEXPIREAT', k, e) end
return {'ok', version, e, cap, now, m[7]}
`,
})

/**
 * Ends a session and leaves a tombstone, so no write in flight (an update, a touch, a framework's
 * end-of-request save) can bring it back. KEYS[1] session. ARGV[1] tombstone TTL (ms).
 * ARGV[2] '1' to return the session's fields (regenerate moves them to a new id). ARGV[3] '1' to
 * leave a tombstone even where there is no key: only for handles taken from a user's index, whose
 * session may be being created right now. Other ids get none, so logging out made-up ids cannot
 * fill Redis with tombstones.
 * Reply: nil when there was no live session; else the user id ('' if none), or the hash as a flat
 * array.
 * allow-oom: logging out must work when Redis is full; the tombstone is smaller than the session.
 */
export const destroyScript = defineScript<string | string[] | null>({
  name: 'session.destroy',
  keys: 1,
  flags: ['allow-oom'],
  lua: `${NOW}
local k = KEYS[1]
local exists = redis.call('EXISTS', k) == 1
if not exists and ARGV[3] ~= '1' then return false end
local reply = false
if exists and redis.call('TYPE', k).ok == 'hash' and redis.call('HEXISTS', k, '@x') == 0 then
  local e = tonumber(redis.call('HGET', k, '@e'))
  if e and e > now then
    if ARGV[2] == '1' then reply = redis.call('HGETALL', k) else reply = redis.call('HGET', k, '@u') or '' end
  end
end
redis.call('DEL', k)
redis.call('HSET', k, '@x', 1)
redis.call('PEXPIRE', k, ARGV[1])
return reply
`,
})

const INDEX = `${NOW}
local k = KEYS[1]
redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
local added = nil
if ARGV[1] == 'add' then
  added = ARGV[3] ~= '' and tonumber(ARGV[3]) or now + tonumber(ARGV[4])
  redis.call('ZADD', k, added, ARGV[2])
elseif #ARGV > 1 then
  redis.call('ZREM', k, unpack(ARGV, 2))
end
local last = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
if #last == 0 then
  redis.call('DEL', k)
else
  redis.call('PEXPIREAT', k, last[2])
end
if added then return added end
return redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
`

/**
 * A user's index of sessions: handles scored by their absolute expiry, so entries past it are
 * trimmed in the same call, and the key's TTL is the latest expiry in it.
 * KEYS[1] index. ARGV[1] 'add', ARGV[2] handle, ARGV[3] its absolute expiry (epoch ms, or '' for
 * now + ARGV[4] ms). Reply: the handle's absolute expiry.
 * No flag: it grows the index, so it is refused at maxmemory (and create with it).
 */
export const indexAddScript = defineScript<number>({
  name: 'session.indexAdd',
  keys: 1,
  lua: INDEX,
})

/**
 * KEYS[1] index. ARGV[1] 'remove', ARGV[2..] handles (none: just trims). Reply: the handles left,
 * with their expiries, as a flat array.
 * allow-oom: it only frees memory, so "log out everywhere" finishes when Redis is full.
 */
export const indexRemoveScript = defineScript<string[]>({
  name: 'session.indexRemove',
  keys: 1,
  flags: ['allow-oom'],
  lua: INDEX,
})

/**
 * KEYS[1] session. Deletes it unless it is a tombstone. Reply: 1 if deleted.
 * allow-oom: it only frees memory.
 */
export const clearScript = defineScript<number>({
  name: 'session.clear',
  keys: 1,
  flags: ['allow-oom'],
  lua: `
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' or redis.call('HEXISTS', KEYS[1], '@x') == 1 then return 0 end
return redis.call('DEL', KEYS[1])
`,
})
