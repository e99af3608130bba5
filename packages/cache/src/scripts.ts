import { defineScript } from '@rp/core'

/*
 * An entry is one hash: d = encoded value, f = flags, e = fresh-until (server ms), c = how long the
 * factory took (ms, for early refresh), t = the entry's tags with the versions they had when it was
 * written ("tag\nversion\n" repeated). The key's own TTL is ttl + grace: the grace period is the same
 * key, not a second copy. Tag versions live in one hash per shard, declared in KEYS, so a read checks
 * them in the same script.
 */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

const READ = `
local function read_entry(key, tags_key, now)
  local r = redis.call('HMGET', key, 'd', 'f', 'e', 'c', 't')
  if not r[1] then return nil end
  if r[5] and r[5] ~= '' then
    for tag, version in string.gmatch(r[5], '([^\\n]*)\\n([^\\n]*)\\n') do
      if (redis.call('HGET', tags_key, tag) or '0') ~= version then return nil end
    end
  end
  return {r[1], r[2], tonumber(r[3]) - now, tonumber(r[4] or '0')}
end
`

/**
 * KEYS: [entry, tags hash]. Reply: nil on a miss (absent, expired, or invalidated by a tag), else
 * {data, flags, ms until stale (negative once stale, within grace), factory ms}.
 */
export const readScript = defineScript<[string, string, number, number] | null>({
  name: 'cache.read',
  keys: 2,
  lua: `${NOW}${READ}
return read_entry(KEYS[1], KEYS[2], now)`,
})

/**
 * The getOrSet read: like cache.read, and when the entry is missing or stale it also tries to take
 * the loader lease (SET NX PX), so electing one loader costs no extra round trip.
 * KEYS: [entry, tags hash, lease]. ARGV: [owner, leaseMs, refreshStale 0|1, force 0|1]. `force`
 * takes the lease even over a fresh entry: the caller could not decode it and must replace it.
 * Reply: {entry or false, 1 if this caller holds the lease now}.
 */
export const readOrLeaseScript = defineScript<[[string, string, number, number] | null, number]>({
  name: 'cache.readOrLease',
  keys: 3,
  lua: `${NOW}${READ}
local entry = read_entry(KEYS[1], KEYS[2], now)
if entry and ARGV[4] ~= '1' and (entry[3] > 0 or ARGV[3] == '0') then return {entry, 0} end
local leased = redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2])
return {entry or false, leased and 1 or 0}`,
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
  for i, name in ipairs(names) do parts[#parts + 1] = name .. '\\n' .. (versions[i] or '0') .. '\\n' end
  tags = table.concat(parts)
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
  lua: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
})
