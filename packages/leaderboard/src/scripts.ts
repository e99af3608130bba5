import { defineScript } from '@rp/core/kit'

/*
 * Every script of a board takes the same KEYS, all tagged by the board's name (one slot):
 *   KEYS[1] z   sorted set: member (or, with first-reached ties, reach prefix .. member) -> score
 *   KEYS[2] r   hash, first-reached only: member -> its sorted-set name
 *   KEYS[3] q   string, first-reached only: the board's reach sequence
 *   KEYS[4] d   sorted set, dense ranking only: each distinct score once
 *   KEYS[5] dc  hash, dense ranking only: distinct score -> how many members have it
 *   KEYS[6] sub sorted set: submission ids -> when they may be forgotten (ms)
 * and ARGV[1] order ('desc' | 'asc'), ARGV[2] ties ('member' | 'first-reached'), ARGV[3] ranking
 * ('ordinal' | 'dense' | 'competition'). Scores are exact doubles (%.17g both ways).
 *
 * First-reached ties: a member's sorted-set name is a 14-digit reach number and the member. Equal
 * scores order by name, so the earlier reach ranks higher: ascending boards count up (seq), and
 * descending ones, read in reverse, count down (10^14 - 1 - seq).
 */

// What every leaderboard script shares, as its setup: in a tick's batch it runs once for all the
// calls (core's defineScript), where these dozen closures, made afresh per call, were much of a
// read's Redis time. The keys and the board's policy are slots the functions close over, which
// each call fills first (BIND): calls of a batch run one after another, so each sees its own.
const COMMON = `
local z, r, q, d, dc, sub, DESC, FIRST, RANKING, DENSE

local function fmt(x) return string.format('%.17g', x) end

local function stored(member)
  if FIRST then return redis.call('HGET', r, member) end
  return member
end

local function member_of(s)
  if FIRST then return string.sub(s, 15) end
  return s
end

-- score and sorted-set name of a member, or nil
local function score_of(member)
  local s = stored(member)
  if not s then return nil, nil end
  local sc = redis.call('ZSCORE', z, s)
  if not sc then return nil, nil end
  return tonumber(sc), s
end

local function is_better(a, b)
  if DESC then return a > b end
  return a < b
end

-- members with a strictly better score
local function better_count(sc)
  if DESC then return redis.call('ZCOUNT', z, '(' .. fmt(sc), '+inf') end
  return redis.call('ZCOUNT', z, '-inf', '(' .. fmt(sc))
end

-- distinct scores strictly better
local function dense_better(sc)
  if DESC then return redis.call('ZCOUNT', d, '(' .. fmt(sc), '+inf') end
  return redis.call('ZCOUNT', d, '-inf', '(' .. fmt(sc))
end

-- 0-based position in board order
local function position(s)
  if DESC then return redis.call('ZREVRANK', z, s) end
  return redis.call('ZRANK', z, s)
end

local function rank_of(s, sc)
  if RANKING == 'ordinal' then return position(s) + 1 end
  if RANKING == 'competition' then return better_count(sc) + 1 end
  return dense_better(sc) + 1
end

local function dense_add(sc)
  local k = fmt(sc)
  if redis.call('HINCRBY', dc, k, 1) == 1 then redis.call('ZADD', d, sc, k) end
end

local function dense_del(sc)
  local k = fmt(sc)
  if redis.call('HINCRBY', dc, k, -1) <= 0 then
    redis.call('HDEL', dc, k)
    redis.call('ZREM', d, k)
  end
end

-- maxMembers (cap) trims the worst after a write; expire_at ('' = never) is a periodic board's expiry
local function trim_and_expire(cap, expire_at)
  cap = tonumber(cap)
  if cap then
    local over = redis.call('ZCARD', z) - cap
    if over > 0 then
      local worst
      if DESC then worst = redis.call('ZRANGE', z, 0, over - 1, 'WITHSCORES')
      else worst = redis.call('ZREVRANGE', z, 0, over - 1, 'WITHSCORES') end
      for i = 1, #worst, 2 do
        redis.call('ZREM', z, worst[i])
        if FIRST then redis.call('HDEL', r, member_of(worst[i])) end
        if DENSE then dense_del(tonumber(worst[i + 1])) end
      end
    end
  end
  if expire_at ~= '' then
    for _, k in ipairs({z, r, q, d, dc}) do redis.call('PEXPIREAT', k, expire_at) end
  end
end

-- entries from position offset, count of them, in board order: {offset, rank of the first entry,
-- then name, score pairs as ZRANGE gives them}; the client ranks the rest, which needs only the
-- scores it already has, so the script stays one range read and at most one ZCOUNT
local function page(offset, count)
  local out = {offset, offset + 1}
  if count <= 0 then return out end
  local raw
  if DESC then raw = redis.call('ZREVRANGE', z, offset, offset + count - 1, 'WITHSCORES')
  else raw = redis.call('ZRANGE', z, offset, offset + count - 1, 'WITHSCORES') end
  -- The first entry of the board ranks 1 under every policy: no count needed.
  if #raw > 0 and RANKING ~= 'ordinal' and offset > 0 then
    local sc = tonumber(raw[2])
    if RANKING == 'competition' then out[2] = better_count(sc) + 1 else out[2] = dense_better(sc) + 1 end
  end
  for i = 1, #raw do out[i + 2] = raw[i] end
  return out
end
`

/** The start of every body: this call's keys and policy into COMMON's slots. */
const BIND = `
z, r, q, d, dc, sub = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
DESC = ARGV[1] == 'desc'
FIRST = ARGV[2] == 'first-reached'
RANKING = ARGV[3]
DENSE = RANKING == 'dense'
`

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

/**
 * Submits a score. ARGV[4] member, ARGV[5] score, ARGV[6] update ('replace' | 'best' |
 * 'increment'), ARGV[7] submission id ('' = none), ARGV[8] how long a submission id is remembered
 * (ms), ARGV[9] maxMembers ('' = no cap), ARGV[10] expire the board's keys at (epoch ms, '' = never:
 * periodic boards).
 * Reply: {'ok', score, rank or false, changed 0|1} | {'dup', score or false, rank or false} (a
 * submission id seen before: nothing written) | {'range', score} (an increment past ±(2^53 - 1);
 * nothing written, the submission id not remembered) | {'expired'} (ARGV[10] has passed).
 */
export const submitScript = defineScript<Array<string | number | null>>({
  name: 'leaderboard.submit',
  keys: 6,
  setup: COMMON,
  lua: `${BIND}${NOW}
local member, score, mode, sid = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
-- A periodic board whose keys have expired (a cycle past keep): nothing written would stay.
if ARGV[10] ~= '' and tonumber(ARGV[10]) <= now then return {'expired'} end
if sid ~= '' then
  redis.call('ZREMRANGEBYSCORE', sub, '-inf', now)
  if redis.call('ZSCORE', sub, sid) then
    local sc, s = score_of(member)
    if not sc then return {'dup', false, false} end
    return {'dup', fmt(sc), rank_of(s, sc)}
  end
end
local old, s = score_of(member)
local new = score
if mode == 'increment' and old then new = old + score end
-- Checked before the submission id is remembered: a refused submit may be retried.
if math.abs(new) > 9007199254740991 then return {'range', fmt(new)} end
if sid ~= '' then
  redis.call('ZADD', sub, now + tonumber(ARGV[8]), sid)
  redis.call('PEXPIRE', sub, ARGV[8])
end
local changed = true
if old then
  if mode == 'best' then changed = is_better(score, old)
  else changed = new ~= old end
end
if changed then
  if FIRST then
    -- Checked before anything is written: a script that fails halfway is not rolled back.
    local seq = redis.call('INCR', q)
    if seq > 99999999999998 then return redis.error_reply('leaderboard: the reach sequence is exhausted (10^14 score changes)') end
    if s then redis.call('ZREM', z, s) end
    if DESC then seq = 99999999999999 - seq end
    s = string.format('%014.0f', seq) .. member
    redis.call('HSET', r, member, s)
  else
    s = member
  end
  redis.call('ZADD', z, new, s)
  if DENSE then
    if old then dense_del(old) end
    dense_add(new)
  end
else
  new = old
end
trim_and_expire(ARGV[9], ARGV[10])
local rank = false
if redis.call('ZSCORE', z, s) then rank = rank_of(s, new) end
return {'ok', fmt(new), rank, changed and 1 or 0}
`,
})

/**
 * Many submits in one call, applied in order as submit would (without submission ids or ranks),
 * but read and written in a few batched commands: the members' current names and scores first
 * (HMGET, ZMSCORE), the changes worked out in Lua, then one HSET and one ZADD for all of them.
 * ARGV[4] update, ARGV[5] maxMembers ('' = none), ARGV[6] expire at ('' = never), then score,
 * member pairs (ZADD's order). Reply: how many submits changed a score, {'range', index} for an increment out of
 * range (nothing is written), or {'expired'} (ARGV[6] has passed).
 */
export const submitManyScript = defineScript<number | Array<string>>({
  name: 'leaderboard.submitMany',
  keys: 6,
  setup: COMMON,
  lua: `${BIND}
local mode = ARGV[4]
if ARGV[6] ~= '' then
  local t = redis.call('TIME')
  if tonumber(ARGV[6]) <= tonumber(t[1]) * 1000 then return {'expired'} end
end
local function finish(changed)
  trim_and_expire(ARGV[5], ARGV[6])
  return changed
end
-- Member ties without a dense index keep nothing but the sorted set: replace and best are plain
-- ZADD (GT/LT for best), which applies repeated members in order, as submits would.
-- The pairs come score first, as ZADD takes them, so they go to it straight from ARGV.
if not FIRST and not DENSE and mode ~= 'increment' then
  local changed = 0
  for i = 7, #ARGV, 4000 do
    local last = math.min(i + 3999, #ARGV)
    if mode == 'best' then
      changed = changed + redis.call('ZADD', z, DESC and 'GT' or 'LT', 'CH', unpack(ARGV, i, last))
    else
      changed = changed + redis.call('ZADD', z, 'CH', unpack(ARGV, i, last))
    end
  end
  return finish(changed)
end
local members, order = {}, {}
for i = 7, #ARGV, 2 do
  if not members[ARGV[i + 1]] then
    members[ARGV[i + 1]] = {}
    order[#order + 1] = ARGV[i + 1]
  end
end
-- current names and scores, in two commands
local names = order
if FIRST then names = redis.call('HMGET', r, unpack(order)) end
local lookup = {}
for i, member in ipairs(order) do
  local st = members[member]
  st.name = names[i] or nil
  if st.name then lookup[#lookup + 1] = st.name end
end
local scores = {}
if #lookup > 0 then
  local found = redis.call('ZMSCORE', z, unpack(lookup))
  for i, name in ipairs(lookup) do scores[name] = found[i] end
end
for _, member in ipairs(order) do
  local st = members[member]
  if st.name and scores[st.name] then
    st.orig = tonumber(scores[st.name])
    st.score = st.orig
  else
    st.name = nil
  end
end
-- apply in order
local changed = 0
local seqs = 0
for i = 7, #ARGV, 2 do
  local st = members[ARGV[i + 1]]
  local score = tonumber(ARGV[i])
  local new = score
  if mode == 'increment' and st.score then new = st.score + score end
  if math.abs(new) > 9007199254740991 then return {'range', tostring((i - 7) / 2)} end
  local change = true
  if st.score then
    if mode == 'best' then change = is_better(score, st.score) else change = new ~= st.score end
  end
  if change then
    changed = changed + 1
    st.score = new
    st.dirty = true
    if FIRST then
      seqs = seqs + 1
      st.seq = seqs
    end
  end
end
if changed == 0 then return finish(0) end
-- write the final state of every changed member
local base = 0
if FIRST and seqs > 0 then
  base = redis.call('INCRBY', q, seqs) - seqs
  if base + seqs > 99999999999998 then return redis.error_reply('leaderboard: the reach sequence is exhausted (10^14 score changes)') end
end
local zadd, hset, zrem = {}, {}, {}
for _, member in ipairs(order) do
  local st = members[member]
  if st.dirty then
    local name = member
    if FIRST then
      local seq = base + st.seq
      if DESC then seq = 99999999999999 - seq end
      name = string.format('%014.0f', seq) .. member
      hset[#hset + 1] = member
      hset[#hset + 1] = name
      if st.name then zrem[#zrem + 1] = st.name end
    end
    zadd[#zadd + 1] = st.score
    zadd[#zadd + 1] = name
    if DENSE and st.orig ~= st.score then
      if st.orig then dense_del(st.orig) end
      dense_add(st.score)
    end
  end
end
for i = 1, #zrem, 4000 do redis.call('ZREM', z, unpack(zrem, i, math.min(i + 3999, #zrem))) end
for i = 1, #hset, 4000 do redis.call('HSET', r, unpack(hset, i, math.min(i + 3999, #hset))) end
for i = 1, #zadd, 4000 do redis.call('ZADD', z, unpack(zadd, i, math.min(i + 3999, #zadd))) end
return finish(changed)
`,
})

/**
 * ARGV[4] member. Reply: {score, rank, better, count} or nil; `better` is how many members rank
 * strictly above (by position for ordinal ranking), for percentiles.
 */
export const entryScript = defineScript<Array<string | number> | null>({
  name: 'leaderboard.entry',
  keys: 6,
  flags: ['no-writes'],
  setup: COMMON,
  lua: `${BIND}
local sc, s = score_of(ARGV[4])
if not sc then return false end
local better, rank
if RANKING == 'ordinal' then
  better = position(s)
  rank = better + 1
else
  better = better_count(sc)
  if RANKING == 'competition' then rank = better + 1 else rank = dense_better(sc) + 1 end
end
return {fmt(sc), rank, better, redis.call('ZCARD', z)}
`,
})

/** ARGV[4] offset, ARGV[5] count. Reply: page(): {offset, first rank, name, score, …}. */
export const pageScript = defineScript<Array<string | number>>({
  name: 'leaderboard.page',
  keys: 6,
  flags: ['no-writes'],
  setup: COMMON,
  lua: `${BIND}
return page(tonumber(ARGV[4]), tonumber(ARGV[5]))
`,
})

/**
 * ARGV[4] member, ARGV[5] n, ARGV[6] '1' to fill borders (shift the window at the edges instead
 * of cutting it). Reply: nil when the member is not on the board; else page() of the window: n
 * above and n below the member.
 */
export const aroundScript = defineScript<Array<string | number> | null>({
  name: 'leaderboard.around',
  keys: 6,
  flags: ['no-writes'],
  setup: COMMON,
  lua: `${BIND}
local sc, s = score_of(ARGV[4])
if not sc then return false end
local n = tonumber(ARGV[5])
local pos = position(s)
local last = redis.call('ZCARD', z) - 1
local lo, hi = pos - n, pos + n
if ARGV[6] == '1' then
  if lo < 0 then
    hi = math.min(last, hi - lo)
    lo = 0
  end
  if hi > last then
    lo = math.max(0, lo - (hi - last))
    hi = last
  end
else
  lo = math.max(0, lo)
  hi = math.min(last, hi)
end
return page(lo, hi - lo + 1)
`,
})

/**
 * ARGV[4..] members. Reply: for each, {score, rank, sorted-set name} or {false, false, false}:
 * the client orders them (by score, then by the name, as the board does) and ranks among them.
 */
export const amongScript = defineScript<Array<string | number | null>>({
  name: 'leaderboard.among',
  keys: 6,
  flags: ['no-writes'],
  setup: COMMON,
  lua: `${BIND}
local out = {}
for i = 4, #ARGV do
  local sc, s = score_of(ARGV[i])
  if sc then
    out[#out + 1] = fmt(sc)
    out[#out + 1] = rank_of(s, sc)
    out[#out + 1] = s
  else
    out[#out + 1] = false
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
return out
`,
})

/** ARGV[4] member. Reply: 1 if it was on the board. allow-oom: it only frees memory. */
export const removeScript = defineScript<number>({
  name: 'leaderboard.remove',
  keys: 6,
  flags: ['allow-oom'],
  setup: COMMON,
  lua: `${BIND}
local sc, s = score_of(ARGV[4])
if not sc then return 0 end
redis.call('ZREM', z, s)
if FIRST then redis.call('HDEL', r, ARGV[4]) end
if DENSE then dense_del(sc) end
return 1
`,
})

/**
 * A consistent copy of the board for export: KEYS[7] the snapshot key (same tag). ARGV[4] its TTL
 * (ms). Reply: how many entries it holds.
 */
export const snapshotScript = defineScript<number>({
  name: 'leaderboard.snapshot',
  keys: 7,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('COPY', KEYS[1], KEYS[7], 'REPLACE')
redis.call('PEXPIRE', KEYS[7], ARGV[4])
return redis.call('ZCARD', KEYS[7])
`,
})
