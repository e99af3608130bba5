import { defineScript } from '@rp/core/kit'
import { MAX_TAGS_PER_ENTRY } from './entry.js'

/*
 * An entry is one string, so a read is one GET and the reply one bulk string the client splits
 * (a hash of five fields cost a hit 3.6 µs of Redis time inside a batch, against 2.6):
 *
 *   'R1' <fresh-until:13> <'T' tagged | 'N' not> <factory ms>,<flags>,<#tags>,<#tag bytes>,<tags><data>
 *
 * - fresh-until is server ms, zero-padded at a fixed offset, so a read compares it without parsing
 *   the rest; an untagged entry ('N') needs nothing more.
 * - <tags> is the entry's tags with the versions they had when it was written ("tag\nversion\n"
 *   repeated; tags arrive escaped, so they never contain a newline). Lua skips them by their byte
 *   count, the client by their count of newlines (bytes and characters differ outside ASCII).
 * - <data> is the encoded value, to the end of the string; <flags> the codec's envelope flags.
 *
 * The key's own TTL is ttl + grace: the grace period is the same key, not a second copy. Tag
 * versions live in one hash per shard, declared in KEYS, so a read checks them in the same script;
 * a write makes that hash outlive the entry, so an invalidation can never expire before what it
 * invalidated. A value this cache did not write reads as -1 ("corrupt"): a per-key miss that the
 * next write replaces, never a script error. A hash is an entry of the earlier layout (d, f, e,
 * c, t fields), still read until it expires or is rewritten, so an upgrade loses no entry.
 */

const NOW = 'local now = rp_now_ms()'

const READ = `
local function tags_current(tags_key, t)
  for tag, version in string.gmatch(t, '([^\\n]*)\\n([^\\n]*)\\n') do
    local v = redis.pcall('HGET', tags_key, tag)
    if type(v) == 'table' and v.err then return nil end
    -- A write stores every version it records, so a missing one means the versions hash was lost
    -- (evicted, deleted): reading it as 0 would bring back entries invalidated since. A miss.
    if v ~= version then return false end
  end
  return true
end
local function read_hash(key, tags_key, now)
  local r = redis.pcall('HMGET', key, 'd', 'f', 'e', 'c', 't')
  if r.err then return -1 end
  if not r[1] then return nil end
  local e = tonumber(r[3])
  if not e or not r[2] then return -1 end
  local t = r[5] or ''
  local current = tags_current(tags_key, t)
  if current == nil then return -1 end
  if not current then return nil end
  return {r[1], r[2], e - now, tonumber(r[4] or '0') or 0, t}
end
local function read_entry(key, tags_key, now)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then
    if string.find(v.err, 'WRONGTYPE', 1, true) and redis.call('TYPE', key).ok == 'hash' then
      return read_hash(key, tags_key, now)
    end
    return -1
  end
  if not v then return nil end
  -- Thirteen digits, not whatever tonumber takes (spaces, hex, 'nan'): a foreign value is corrupt.
  if not string.find(v, '^R1%d%d%d%d%d%d%d%d%d%d%d%d%d[NT]') then return -1 end
  local e = tonumber(string.sub(v, 3, 15))
  if string.byte(v, 16) == 84 then
    local _, last, count, bytes = string.find(v, '^%d+,[^,]*,(%d+),(%d+),', 17)
    -- At most as many tags as a write may give, each one HGET.
    if not last or tonumber(count) > ${MAX_TAGS_PER_ENTRY} then return -1 end
    local current = tags_current(tags_key, string.sub(v, last + 1, last + tonumber(bytes)))
    if current == nil then return -1 end
    if not current then return nil end
  end
  return {v, e - now}
end
`

/**
 * An entry as the scripts return it: {value string, ms until stale (negative once stale, within
 * grace)}, or an entry of the earlier hash layout: {data, flags, ms until stale, factory ms, tags}.
 */
export type StoredEntry = [string, number] | [string, string, number, number, string]

/** An entry as the cache uses it: data, flags, ms until stale, factory ms, tags field. */
export type RawEntry = [string, string, number, number, string]

/**
 * KEYS: [entry, tags hash]. Reply: nil on a miss (absent, expired, or invalidated by a tag), -1
 * for a corrupt key, else a StoredEntry.
 */
export const readScript = defineScript<StoredEntry | -1 | null>({
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
 * A corrupt entry counts as missing. Reply: {StoredEntry or false, 1 if this caller holds the
 * lease now, 1 if the entry was corrupt}.
 */
export const readOrLeaseScript = defineScript<[StoredEntry | null, number, number]>({
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
if entry and ARGV[4] ~= '1' and (entry[#entry == 2 and 2 or 3] > 0 or ARGV[3] == '0') then return {entry, 0, 0} end
local leased = redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2])
-- Every lease has a TTL: a key there without one (of any type) was written by someone else, and
-- waiting for it to lapse would wait forever. Replaced, as a foreign entry is.
if not leased and redis.call('PTTL', KEYS[3]) == -1 then leased = redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2]) end
return {entry or false, leased and 1 or 0, corrupt}`,
})

/**
 * A StoredEntry as the cache uses it. The client finds the tags by their newlines, so a
 * multi-byte character in a tag cannot shift them. A value it cannot split gets empty flags, which
 * no codec envelope has: it fails to decode, so it is reported and read as corrupt, like any other.
 */
export function entryOf(stored: StoredEntry): RawEntry {
  if (stored.length === 5) return stored
  const [v, freshMs] = stored
  const c1 = v.indexOf(',', 16)
  const c2 = v.indexOf(',', c1 + 1)
  const c3 = v.indexOf(',', c2 + 1)
  const c4 = c3 < 0 ? -1 : v.indexOf(',', c3 + 1)
  const unreadable = (): RawEntry => ['', '', freshMs, 0, '']
  if (c4 < 0) return unreadable()
  const tagCount = Number(v.slice(c2 + 1, c3))
  // An untagged entry that lists tags is not one this cache wrote: L1 would record tags Redis never checked.
  if (v.charCodeAt(15) === 78 && tagCount !== 0) return unreadable()
  let end = c4 + 1
  for (let i = 0; i < 2 * tagCount; i++) {
    end = v.indexOf('\n', end) + 1
    if (end === 0) return unreadable()
  }
  return [v.slice(end), v.slice(c1 + 1, c2), freshMs, Number(v.slice(16, c1)) || 0, v.slice(c4 + 1, end)]
}

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
local count = #ARGV - 8
if count > 0 then
  local names = {}
  for i = 9, #ARGV do names[#names + 1] = ARGV[i] end
  local versions = redis.pcall('HMGET', KEYS[2], unpack(names))
  -- Not a hash: a key someone else wrote where this cache keeps its versions. Replaced, as a
  -- foreign entry is (every tagged entry of the shard then reads as a miss), not a Redis failure.
  if versions.err then
    redis.call('DEL', KEYS[2])
    versions = {}
  end
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
-- %.0f, not %d: Lua's %d is a C long, 32 bits on some builds, and a time in ms needs 41.
local head = string.format('R1%013.0f%s%s,%s,%d,%d,', now + ttl, count > 0 and 'T' or 'N', ARGV[5], ARGV[2], count, #tags)
redis.call('SET', KEYS[1], head .. tags .. ARGV[1], 'PX', life)
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
local v = redis.pcall('HINCRBY', KEYS[1], ARGV[1], 1)
if type(v) == 'table' and v.err then
  -- A foreign key where the versions live (see cache.write): replaced.
  redis.call('DEL', KEYS[1])
  v = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
end
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
