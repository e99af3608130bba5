import { defineScript } from '@rp/core/kit'

/*
 * A session is one string, so a read is one GET and the client parses the data with one
 * JSON.parse (a hash with a field per top-level key cost three times the Redis CPU per read, and a
 * third more memory, against connect-redis's one string):
 *
 *   'S1' <lastSeenAt:13> <expiresAt:13> <createdAt>,<absoluteExpiresAt>,<version>,<idle TTL ms>,
 *   <#user>,<#meta>,<index>;<user><meta><data>
 *
 * - lastSeenAt and expiresAt are zero-padded to 13 digits at fixed offsets, so a touch rewrites
 *   them in place (SETRANGE) instead of rewriting the session.
 * - <user> is the user id as a JSON string, <meta> the device meta as JSON ('' for none and for {}),
 *   both with every non-ASCII character \u-escaped, so everything before <data> is ASCII and a
 *   byte offset here is a character offset for the client.
 * - <data> is the session data as one JSON object text: '{' then a segment per top-level field,
 *   `<JSON-quoted name>:<value text>`, joined by ',', then '}'. The value text is the field's JSON
 *   (or, with another codec, the codec's output as a JSON string).
 * - <index> is `<#name>:<#value>` per segment, joined by '.': how a write finds each field to merge
 *   per field, without parsing JSON in Lua.
 *
 * A tombstone (after destroy) is the string 'T'. Every time is the server's clock in ms, and the
 * key's TTL is always exactly expiresAt (PEXPIREAT), so the stored expiry and the TTL never
 * disagree. A key of another type fails GET with WRONGTYPE: a data error the client reports.
 */
const NOW = `
local now = rp_now_ms()
`

// times: lastSeenAt and expiresAt at their fixed widths, with the C long's %d where it holds 2^53
// (0.2 µs a number, against 0.9 for the C library's exact float printing; see rp_int in core).
const TIMES = `
local times_form = string.format('%d', 2 ^ 53) == '9007199254740992' and '%013d%013d' or '%013.0f%013.0f'
local function times(l, e)
  return string.format(times_form, l, e)
end
`

// head: the fixed part and the first four numbers of a value (all
// that a touch needs), or nil for a value this store did not write. parse: head, plus where the
// user, meta and data start and the index, or nil.
const PARSE = `${TIMES}
local function head(v)
  if string.sub(v, 1, 2) ~= 'S1' then return nil end
  local c, a, ver, idle = string.match(v, '^(%d+),(%d+),(%d+),(%d+),', 29)
  local l, e = tonumber(string.sub(v, 3, 15)), tonumber(string.sub(v, 16, 28))
  if not (idle and l and e) then return nil end
  return {l = l, e = e, c = tonumber(c), a = tonumber(a), v = tonumber(ver), i = tonumber(idle)}
end
local function parse(v)
  local s = head(v)
  if not s then return nil end
  local semi = string.find(v, ';', 29, true)
  if not semi then return nil end
  local ul, ml, idx = string.match(string.sub(v, 29, semi - 1), '^%d+,%d+,%d+,%d+,(%d+),(%d+),([%d:%.]*)$')
  if not idx then return nil end
  s.idx = idx
  s.ul, s.ml = tonumber(ul), tonumber(ml)
  s.ustart = semi + 1
  s.dstart = semi + 1 + tonumber(ul) + tonumber(ml)
  return s
end
`

/**
 * Reads a session, and with ARGV[1] = '1' rolls its idle expiry in place.
 * KEYS[1] session. ARGV[1] touch, ARGV[2] touchAfterMs, ARGV[3] idle TTL for this touch ('' = the
 * session's own).
 * Reply: nil for no live session (missing, destroyed or expired); the stored value as it was
 * read; or, when this call rolled the expiry, {value, lastSeenAt, expiresAt} with the new times.
 * The value is never parsed here unless it rolls: the client parses it (and reports a value this
 * store did not write).
 * allow-oom: a touch rewrites 26 bytes and a TTL, so reads keep working at maxmemory.
 */
export const getScript = defineScript<string | Array<string | number> | null>({
  name: 'session.get',
  keys: 1,
  flags: ['allow-oom'],
  setup: TIMES,
  lua: `
local k = KEYS[1]
local v = redis.call('GET', k)
if not v or v == 'T' then return false end
if ARGV[1] ~= '1' or string.sub(v, 1, 2) ~= 'S1' then return v end
local cap, idle = string.match(v, '^%d+,(%d+),%d+,(%d+),', 29)
local e = tonumber(string.sub(v, 16, 28))
if not (e and idle) then return v end
${NOW}
if e <= now then
  redis.call('DEL', k)
  return false
end
-- lastSeenAt is parsed only for a throttle (strtod costs 0.4 µs a number).
if ARGV[2] ~= '0' and now - (tonumber(string.sub(v, 3, 15)) or 0) < tonumber(ARGV[2]) then return v end
e = math.min(now + (ARGV[3] ~= '' and tonumber(ARGV[3]) or tonumber(idle)), tonumber(cap))
redis.call('SETRANGE', k, 2, times(now, e))
redis.call('PEXPIREAT', k, rp_int(e))
return {v, now, e}
`,
})

/**
 * KEYS[1] session. ARGV[1] touchAfterMs, ARGV[2] idle TTL for this touch ('' = the session's own).
 * Reads only the value's first 128 bytes (the fixed part and the four numbers after it).
 * Reply: the new expiresAt, the current one when throttled by touchAfterMs, nil when there is no
 * live session (a touch never creates or revives one), or -1 for a value this store did not write.
 */
export const touchScript = defineScript<number | null>({
  name: 'session.touch',
  keys: 1,
  flags: ['allow-oom'],
  setup: PARSE,
  lua: `
local k = KEYS[1]
local v = redis.call('GETRANGE', k, 0, 127)
if v == '' or v == 'T' then return false end
local s = head(v)
if not s then return -1 end
${NOW}
if s.e <= now then return false end
if now - s.l < tonumber(ARGV[1]) then return s.e end
local e = math.min(now + (ARGV[2] ~= '' and tonumber(ARGV[2]) or s.i), s.a)
redis.call('SETRANGE', k, 2, times(now, e))
redis.call('PEXPIREAT', k, rp_int(e))
return e
`,
  decode: (raw) => (raw === null ? null : Number(raw)),
})

/**
 * Creates or changes a session in one step, so a concurrent destroy, expiry or writer is seen.
 * KEYS[1] session.
 * ARGV[1] mode: 'create' (fails if it exists), 'upsert' (creates if missing), 'merge' (only a live
 *   session), 'replace' (only a live session; data fields not written are removed).
 * ARGV[2] expected version ('' = any). ARGV[3] '1' to roll the idle expiry. ARGV[4] idle TTL for this
 * write and from now on ('' = the session's own). ARGV[5] maxBytes. ARGV[6] idle TTL of a new session.
 * ARGV[7] absolute TTL of a new session (ms from now). ARGV[8] absolute expiry of a new session
 * (epoch ms, '' = now + ARGV[7]). ARGV[9] createdAt of a new session ('' = now). ARGV[10] user id
 * (ASCII JSON string, '' = none). ARGV[11] meta (ASCII JSON, '' = none). ARGV[12] n, then n pairs
 * JSON-quoted name, value text to set, then JSON-quoted names to delete (a name both set and
 * deleted is set). ARGV[13] most data fields a session may hold.
 * Size is the bytes of the data's JSON text.
 * Reply: {'ok', version, expiresAt, absoluteExpiresAt, now, createdAt} | {'gone'} (tombstone) |
 * {'missing'} | {'exists'} | {'conflict', version} | {'too-large', bytes} | {'too-many', fields} |
 * {'corrupt'}.
 */
export const writeScript = defineScript<Array<string | number>>({
  name: 'session.write',
  keys: 1,
  setup: PARSE,
  lua: `${NOW}
local k = KEYS[1]
local mode = ARGV[1]
local n = tonumber(ARGV[12])
local max_fields = tonumber(ARGV[13])
local FIRST = 14
local v = redis.call('GET', k)
if v == 'T' then return {'gone'} end
local s = nil
if v then
  s = parse(v)
  if not s then return {'corrupt'} end
end
-- The new data as parts of one table.concat (slot 1 is the header, filled in last), so the value
-- is built in one allocation: Lua's garbage collector, not the commands, was most of a write's
-- cost. A run of unchanged fields is one substring of the old value.
local parts, idx, fields, bytes = {'', '{'}, {}, 0, 0
local function piece(text, lengths, count, size)
  if fields > 0 then parts[#parts + 1] = ',' end
  parts[#parts + 1] = text
  idx[#idx + 1] = lengths
  fields = fields + count
  bytes = bytes + size
end
-- Writes the value; refuses more than max_fields fields, unless the write added none (it cannot
-- make things worse), and more than ARGV[5] bytes of data.
local function store(l, e, c, cap, ver, idle, user_meta, ul, ml, before)
  if fields > max_fields and fields > before then return {'too-many', fields} end
  local size = 2 + bytes + math.max(fields - 1, 0)
  if size > tonumber(ARGV[5]) then return {'too-large', size} end
  parts[#parts + 1] = '}'
  parts[1] = 'S1' .. times(l, e) .. string.format('%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,', c, cap, ver, idle, ul, ml)
    .. table.concat(idx, '.') .. ';' .. user_meta
  redis.call('SET', k, table.concat(parts))
  redis.call('PEXPIREAT', k, rp_int(e))
  return nil
end
-- The fields this write sets (name -> value), and those it deletes (name -> false).
local change, known = {}, {}
if not s or s.e <= now or mode ~= 'replace' then
  for i = FIRST + 2 * n, #ARGV do change[ARGV[i]] = false end
end
for i = FIRST, FIRST + 2 * n - 1, 2 do change[ARGV[i]] = ARGV[i + 1] end
local function add_new()
  for i = FIRST, FIRST + 2 * n - 1, 2 do
    local name, value = ARGV[i], ARGV[i + 1]
    if not known[name] then
      known[name] = true
      piece(name .. ':' .. value, #name .. ':' .. #value, 1, #name + 1 + #value)
    end
  end
end
if not s or s.e <= now then
  if s then redis.call('DEL', k) end
  if mode ~= 'create' and mode ~= 'upsert' then return {'missing'} end
  if ARGV[2] ~= '' then return {'missing'} end
  if n > max_fields then return {'too-many', n} end
  -- A framework's cookie TTL (ARGV[4]) is that session's idle TTL: what a read that rolls uses.
  local idle = ARGV[4] ~= '' and tonumber(ARGV[4]) or tonumber(ARGV[6])
  local cap = ARGV[8] ~= '' and tonumber(ARGV[8]) or now + tonumber(ARGV[7])
  local created = ARGV[9] ~= '' and tonumber(ARGV[9]) or now
  local e = math.min(now + idle, cap)
  if e <= now then return {'missing'} end
  add_new()
  local refused = store(now, e, created, cap, 1, idle, ARGV[10] .. ARGV[11], #ARGV[10], #ARGV[11], 0)
  if refused then return refused end
  return {'ok', 1, e, cap, now, created}
end
if mode == 'create' then return {'exists'} end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= s.v then return {'conflict', s.v} end
-- Walk the stored fields: unchanged ones join the current run; a changed one ends it.
local pos, run, run_idx, run_fields, run_bytes = s.dstart + 1, nil, {}, 0, 0
local before = 0
local function flush(upto)
  if run then piece(string.sub(v, run, upto), table.concat(run_idx, '.'), run_fields, run_bytes) end
  run, run_idx, run_fields, run_bytes = nil, {}, 0, 0
end
for lengths, nl, vl in string.gmatch(s.idx, '((%d+):(%d+))') do
  nl, vl = tonumber(nl), tonumber(vl)
  local name = string.sub(v, pos, pos + nl - 1)
  known[name] = true
  before = before + 1
  local value = change[name]
  if value == nil and mode ~= 'replace' then
    run = run or pos
    run_idx[#run_idx + 1] = lengths
    run_fields = run_fields + 1
    -- The comma before this field is counted by store's fields - 1.
    run_bytes = run_bytes + nl + 1 + vl
  else
    flush(pos - 2)
    if value then piece(name .. ':' .. value, nl .. ':' .. #value, 1, nl + 1 + #value) end
  end
  pos = pos + nl + vl + 2
end
-- The index must account for the data exactly ('{', the fields, '}'): a value edited by hand, or
-- cut short, is not merged into.
local close = before > 0 and pos - 1 or pos
if close ~= #v or string.byte(v, s.dstart) ~= 123 or string.byte(v, close) ~= 125 then return {'corrupt'} end
flush(pos - 2)
add_new()
local l, e, idle = s.l, s.e, s.i
if ARGV[3] == '1' then
  if ARGV[4] ~= '' then idle = tonumber(ARGV[4]) end
  l = now
  e = math.min(now + idle, s.a)
end
local refused = store(l, e, s.c, s.a, s.v + 1, idle, string.sub(v, s.ustart, s.dstart - 1), s.ul, s.ml, before)
if refused then return refused end
return {'ok', s.v + 1, e, s.a, now, s.c}
`,
})

/**
 * A framework's save of a session it loaded: the whole new value, written only while the stored
 * version is still the one the request loaded. Every write bumps the version, so the stored data
 * is then exactly what the request loaded, and the client's own merge of its changes is the value
 * session.write would build. Here Redis reads a 128-byte head instead of the value: Redis's Lua
 * hashes every byte of every string it makes, and reading, cutting and rebuilding a 1 KiB value in
 * Lua cost session.write four times the Redis time of this.
 * KEYS[1] session. ARGV[1] the loaded version's '<createdAt>,<absoluteExpiresAt>,<version>,' (as
 * stored at offset 29: a session created again under the id has another). ARGV[2] idle TTL of the new
 * value ('' = the stored one). ARGV[3] the new value, with its version one up and that idle TTL; its two times are set here.
 * Reply: {'ok', version, expiresAt, absoluteExpiresAt, now, createdAt}, or {'stale'} for anything
 * else (another version, a tombstone, no live session, a value this store did not write): the
 * client then saves with session.write, which merges and sorts those out.
 */
export const saveScript = defineScript<Array<string | number>>({
  name: 'session.save',
  keys: 1,
  setup: TIMES,
  lua: `
local k = KEYS[1]
local h = redis.call('GETRANGE', k, 0, 127)
if string.sub(h, 1, 2) ~= 'S1' or string.sub(h, 29, 28 + #ARGV[1]) ~= ARGV[1] then return {'stale'} end
local created, cap, ver, idle = string.match(h, '^(%d+),(%d+),(%d+),(%d+),', 29)
if not idle then return {'stale'} end
local e = tonumber(string.sub(h, 16, 28))
local now = rp_now_ms()
if not e or e <= now then return {'stale'} end
if ARGV[2] ~= '' then idle = ARGV[2] end
e = math.min(now + tonumber(idle), tonumber(cap))
redis.call('SET', k, ARGV[3])
redis.call('SETRANGE', k, 2, times(now, e))
redis.call('PEXPIREAT', k, rp_int(e))
return {'ok', tonumber(ver) + 1, e, tonumber(cap), now, tonumber(created)}
`,
})

/**
 * Ends a session and leaves a tombstone, so no write in flight (an update, a touch, a framework's
 * end-of-request save) can bring it back. A key of another type is left as it is: its GET fails
 * with WRONGTYPE, as a read of it does, and the client reports it. KEYS[1] session. ARGV[1]
 * tombstone TTL (ms). ARGV[2] '1' to leave a tombstone even where there is no key: only for handles
 * taken from a user's index, whose session may be being created right now. Other ids get none, so
 * logging out made-up ids cannot fill Redis with tombstones.
 * Reply: nil when there was no live session; else its stored value (the client reads the user id
 * from it, and regenerate moves it to a new id).
 * allow-oom: logging out must work when Redis is full; the tombstone is smaller than the session.
 */
export const destroyScript = defineScript<string | null>({
  name: 'session.destroy',
  keys: 1,
  flags: ['allow-oom'],
  setup: PARSE,
  lua: `${NOW}
local k = KEYS[1]
local v = redis.call('GET', k)
if not v and ARGV[2] ~= '1' then return false end
local reply = false
if v then
  local s = head(v)
  if s and s.e > now then reply = v end
end
redis.call('SET', k, 'T', 'PX', ARGV[1])
return reply
`,
})

const INDEX = `${NOW}
local k = KEYS[1]
redis.call('ZREMRANGEBYSCORE', k, '-inf', rp_int(now))
local added = nil
if ARGV[1] == 'add' then
  added = ARGV[3] ~= '' and tonumber(ARGV[3]) or now + tonumber(ARGV[4])
  redis.call('ZADD', k, rp_int(added), ARGV[2])
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
 * KEYS[1] session. Deletes it if it is a session this store wrote (not a tombstone, not another
 * writer's key). Reply: 1 if deleted.
 * allow-oom: it only frees memory.
 */
export const clearScript = defineScript<number>({
  name: 'session.clear',
  keys: 1,
  flags: ['allow-oom'],
  lua: `
if redis.call('TYPE', KEYS[1]).ok ~= 'string' or redis.call('GETRANGE', KEYS[1], 0, 1) ~= 'S1' then return 0 end
return redis.call('DEL', KEYS[1])
`,
})
