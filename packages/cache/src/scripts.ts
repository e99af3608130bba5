import { defineScript } from '@rp/core/kit'

/*
 * An entry is one hash: d = encoded value, f = flags, e = fresh-until (server ms), c = how long the
 * factory took (ms, for early refresh), t = the entry's tags with the versions they had when it was
 * written ("tag\nversion\n" repeated; tags arrive escaped, so they never contain a newline). The
 * key's own TTL is ttl + grace: the grace period is the same key, not a second copy. Tag versions
 * live in one hash per shard, declared in KEYS, so a read checks them in the same script; a write
 * makes that hash outlive the entry, so an invalidation can never expire before what it invalidated.
 * A key of the wrong type or a malformed hash reads as -1 ("corrupt"): a per-key miss that the next
 * write replaces, never a script error.
 */

const NOW = `local t = rp_time()
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

const READ = `
local function read_entry(key, tags_key, now)
  local r = redis.pcall('HMGET', key, 'd', 'f', 'e', 'c', 't')
  if r.err then return -1 end
  if not r[1] then return nil end
  local e = tonumber(r[3])
  if not e or not r[2] then return -1 end
  local t = r[5] or ''
  if t ~= '' then
    for tag, version in string.gmatch(t, '([^\\n]*)\\n([^\\n]*)\\n') do
      local v = redis.pcall('HGET', tags_key, tag)
      if type(v) == 'table' and v.err then return -1 end
      if (v or '0') ~= version then return nil end
    end
  end
  return {r[1], r[2], e - now, tonumber(r[4] or '0') or 0, t}
end
`

/** An entry as the scripts return it: data, flags, ms until stale, factory ms, tags field. */
export type RawEntry = [string, string, number, number, string]

/**
 * KEYS: [entry, tags hash]. Reply: nil on a miss (absent, expired, or invalidated by a tag), -1
 * for a corrupt key, else {data, flags, ms until stale (negative once stale, within grace), factory
 * ms, tags field}.
 */
export const readScript = defineScript<RawEntry | -1 | null>({
  name: 'cache.read',
  keys: 2,
  flags: ['no-writes'],
  setup: READ,
  lua: `${NOW}
return read_entry(KEYS[1], KEYS[2], now)`,
})

/**
 * The getOrSet read: like cache.read, and when the entry is missing or stale it also tries to take
 * the loader lease (SET NX PX), so electing one loader costs no extra round trip.
 * KEYS: [entry, tags hash, lease]. ARGV: [owner, leaseMs, refreshStale 0|1, force 0|1]. `force`
 * takes the lease even over a fresh entry: the caller could not decode it and must replace it.
 * A corrupt entry counts as missing. Reply: {entry or false, 1 if this caller holds the lease now,
 * 1 if the entry was corrupt}.
 */
export const readOrLeaseScript = defineScript<[RawEntry | null, number, number]>({
  name: 'cache.readOrLease',
  keys: 3,
  setup: READ,
  lua: `${NOW}
local entry = read_entry(KEYS[1], KEYS[2], now)
local corrupt = 0
if entry == -1 then
  entry = nil
  corrupt = 1
end
if entry and ARGV[4] ~= '1' and (entry[3] > 0 or ARGV[3] == '0') then return {entry, 0, 0} end
local leased = redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2])
return {entry or false, leased and 1 or 0, corrupt}`,
})

/**
 * KEYS: [entry, tags hash, lease]. ARGV: [data, flags, ttlMs, graceMs, factoryMs, lease owner or '',
 * done channel, entry key name for the message, tag...].
 * Writes the entry with the current versions of its tags, keeps the tags hash alive at least as
 * long as the entry, frees the lease if this caller holds it, and announces the value to waiters.
 */
export const writeScript = defineScript<number>({
  name: 'cache.write',
  keys: 3,
  lua: `${NOW}
local ttl, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local life = ttl + grace
local tags = ''
if #ARGV > 8 then
  local names = {}
  for i = 9, #ARGV do names[#names + 1] = ARGV[i] end
  local versions = redis.call('HMGET', KEYS[2], unpack(names))
  local parts = {}
  local missing = {}
  for i, name in ipairs(names) do
    parts[#parts + 1] = name .. '\\n' .. (versions[i] or '0') .. '\\n'
    if not versions[i] then
      missing[#missing + 1] = name
      missing[#missing + 1] = '0'
    end
  end
  tags = table.concat(parts)
  -- The tag versions must exist, and live, as long as this entry: a versions hash that expired
  -- before it would reset an invalidated tag to 0 and bring the entry back.
  if #missing > 0 then redis.call('HSET', KEYS[2], unpack(missing)) end
  if redis.call('PTTL', KEYS[2]) < life then redis.call('PEXPIRE', KEYS[2], life) end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'f', ARGV[2], 'e', now + ttl, 'c', ARGV[5], 't', tags)
redis.call('PEXPIRE', KEYS[1], life)
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('DEL', KEYS[3]) end
if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return 1`,
})

/**
 * KEYS: [tags hash]. ARGV: [tag, defaultLifeMs]. Bumps the tag's version, so every entry written
 * with the old version reads as a miss: O(1) whatever the number of tagged entries.
 */
export const invalidateTagScript = defineScript<number>({
  name: 'cache.invalidateTag',
  keys: 1,
  lua: `
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`,
})

/** KEYS: [lease]. ARGV: [owner]. Frees the loader lease if still ours (the factory failed). */
export const releaseLeaseScript = defineScript<number>({
  name: 'cache.releaseLease',
  keys: 1,
  flags: ['allow-oom'],
  lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
})
