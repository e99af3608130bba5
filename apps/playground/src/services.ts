import { Cache } from '@rp/cache'
import { defineScript, keyspace, type RedisClient } from '@rp/core'
import { Leaderboard, PeriodicLeaderboard } from '@rp/leaderboard'
import { LockManager } from '@rp/lock'
import { DurableChannel, PubSub } from '@rp/pubsub'
import { MultiLimiter, RateLimiter } from '@rp/ratelimit'
import { SessionStore } from '@rp/session'
import { nanoid } from 'nanoid'

/** The arcade's key prefix: every key the app and its packages write starts with it. */
export const PREFIX = 'arcade'

/** Where each package writes, for the dashboard's "keys per package" table. */
export const PACKAGE_PREFIXES = {
  session: `${PREFIX}:sess`,
  ratelimit: `${PREFIX}:rl`,
  lock: `${PREFIX}:lock`,
  cache: `${PREFIX}:cache`,
  leaderboard: `${PREFIX}:lb`,
  pubsub: `${PREFIX}:ps`,
  app: `${PREFIX}:app`,
} as const

/** A score event on the durable channel: the worker turns each into board writes, exactly once. */
export interface ScoreEvent {
  user: string
  points: number
  /** Idempotency key: a redelivered event writes nothing twice. */
  submissionId: string
  playedAt: number
  /** The player's IANA time zone: its weekly board gets the score too. */
  timeZone: string
  kind: 'round' | 'bonus'
}

export interface BoardChange {
  user: string
  points: number
  total: number
  rank: number | null
  kind: ScoreEvent['kind']
}

export interface ChatMessage {
  user: string
  text: string
  at: number
}

/** An instrumentation event from another process (the worker), relayed over pub/sub. */
export interface OpsEvent {
  origin: string
  at: number
  event: Record<string, unknown>
}

export type ArcadeEvents = {
  board: BoardChange
  chat: ChatMessage
  profile: { user: string }
  ops: OpsEvent
}

export interface Profile {
  user: string
  motto: string
  color: string
  updatedAt: number
}

export const BONUS_POINTS = 500
const DAY_MS = 86_400_000
const ZONE_TTL_MS = 30 * DAY_MS
export const MAX_ZONES = 32

/**
 * The bonus claim, written only by a holder whose fencing token is newer than any before it: a
 * paused holder whose lock expired cannot write after the next holder did. KEYS[1] the claim hash;
 * ARGV[1] the fencing token, ARGV[2] its TTL (ms). Reply: 1 granted, 0 already claimed, -1 fenced off.
 */
const claimBonusScript = defineScript<number>({
  name: 'playground.claimBonus',
  keys: 1,
  lua: `
local fence = redis.call('HGET', KEYS[1], 'fence')
if fence and tonumber(fence) >= tonumber(ARGV[1]) then return -1 end
if redis.call('HEXISTS', KEYS[1], 'grantedAt') == 1 then
  redis.call('HSET', KEYS[1], 'fence', ARGV[1])
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'grantedAt', t[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`,
})

/**
 * Adds a member to a set that may hold at most ARGV[2] members, and sets its TTL. KEYS[1] the set;
 * ARGV[1] the member, ARGV[2] the cap, ARGV[3] the TTL (ms). Reply: 1 if it is a member now, 0 if full.
 */
const addCappedScript = defineScript<number>({
  name: 'playground.addCapped',
  keys: 1,
  lua: `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`,
})

/** A round of the game: its start time is the server's, so a client cannot choose its own score. */
export interface RoundResult {
  /** ms from green to the click, or null for a click before green. */
  reactionMs: number | null
}

export const MAX_FRIENDS = 12
const ROUND_TTL_MS = 30_000

/** One instance of each pattern, shared by the app processes and the worker. */
export function createServices(redis: RedisClient) {
  const app = keyspace(PACKAGE_PREFIXES.app)
  const sessions = new SessionStore({
    redis,
    prefix: PACKAGE_PREFIXES.session,
    idleTtlMs: 2 * 60 * 60_000,
    absoluteTtlMs: 7 * DAY_MS,
  })
  // Every API call counts against a generous budget; a round of the game against a tight one, so a
  // fast clicker meets a 429 and the page can show the quota draining and refilling.
  const apiLimiter = new RateLimiter({
    redis,
    prefix: `${PACKAGE_PREFIXES.ratelimit}:api`,
    algorithm: 'gcra',
    limit: 600,
    windowMs: 60_000,
    burst: 120,
    // Fail open fast: a hung Redis must not hold every request for the default second.
    timeoutMs: 250,
  })
  // The status probe, per client address, before any session is read.
  const statusLimiter = new RateLimiter({
    redis,
    prefix: `${PACKAGE_PREFIXES.ratelimit}:status`,
    algorithm: 'gcra',
    limit: 300,
    windowMs: 60_000,
    burst: 60,
    timeoutMs: 150,
  })
  // Two policies checked atomically in one script: a short burst and a per-minute ceiling.
  const playLimiter = new MultiLimiter([
    new RateLimiter({
      redis,
      prefix: `${PACKAGE_PREFIXES.ratelimit}:play`,
      algorithm: 'token-bucket',
      limit: 6,
      windowMs: 6_000,
    }),
    new RateLimiter({
      redis,
      prefix: `${PACKAGE_PREFIXES.ratelimit}:play`,
      algorithm: 'sliding-window',
      limit: 60,
      windowMs: 60_000,
    }),
  ])
  const boardOptions = {
    redis,
    prefix: PACKAGE_PREFIXES.leaderboard,
    order: 'desc',
    update: 'increment',
    ties: 'first-reached',
    ranking: 'competition',
  } as const
  const allTime = new Leaderboard({ ...boardOptions, name: 'all-time' })
  const weeklies = new Map<string, PeriodicLeaderboard>()
  const bus = new PubSub<ArcadeEvents>({ redis, prefix: PACKAGE_PREFIXES.pubsub })
  const scores = new DurableChannel<ScoreEvent>({
    redis,
    prefix: PACKAGE_PREFIXES.pubsub,
    name: 'scores',
    maxLen: 100_000,
  })
  const locks = new LockManager({ redis, prefix: PACKAGE_PREFIXES.lock, ttlMs: 5_000 })
  const cache = new Cache({
    redis,
    prefix: PACKAGE_PREFIXES.cache,
    ttlMs: 10 * 60_000,
    graceMs: 60 * 60_000,
    l1: { maxEntries: 1_000, ttlMs: 60_000 },
    tracking: true,
  })
  let originLoads = 0

  return {
    redis,
    sessions,
    apiLimiter,
    statusLimiter,
    playLimiter,
    allTime,
    bus,
    scores,
    locks,
    cache,

    /** The weekly board in a time zone: weeks start on Monday at midnight, on that zone's clock. */
    weekly(timeZone: string): PeriodicLeaderboard {
      let board = weeklies.get(timeZone)
      if (!board) {
        board = new PeriodicLeaderboard({
          ...boardOptions,
          name: `weekly@${timeZone}`,
          cycle: 'weekly',
          timeZone,
        })
        weeklies.set(timeZone, board)
      }
      return board
    },

    /**
     * Remembers a zone someone plays in, so the worker keeps a weekly board for it; at most
     * MAX_ZONES are kept (a player's own zone always gets their scores, see the worker).
     */
    async addZone(timeZone: string): Promise<void> {
      await addCappedScript.run(redis, [app.key('zones', 'set')], [timeZone, MAX_ZONES, ZONE_TTL_MS])
    },

    async zones(): Promise<string[]> {
      return redis.smembers(app.key('zones', 'set'))
    },

    /** Starts a round: green shows after a random delay, measured on this server's clock. */
    async startRound(user: string): Promise<{ roundId: string; delayMs: number }> {
      const roundId = nanoid()
      const delayMs = 700 + Math.floor(Math.random() * 1_100)
      await redis.set(app.key(user, 'round', roundId), Date.now() + delayMs, 'PX', ROUND_TTL_MS)
      return { roundId, delayMs }
    },

    /** Ends a round, once: null if it is unknown, already ended or expired. */
    async finishRound(user: string, roundId: string): Promise<RoundResult | null> {
      const goAt = await redis.getdel(app.key(user, 'round', roundId))
      if (goAt === null) return null
      const reactionMs = Date.now() - Number(goAt)
      return { reactionMs: reactionMs < 0 ? null : reactionMs }
    },

    async friends(user: string): Promise<string[]> {
      return (await redis.smembers(app.key(user, 'friends'))).sort()
    },

    /** Adds a friend unless the list is full; one script, so parallel adds cannot overshoot. */
    async addFriend(user: string, friend: string): Promise<boolean> {
      const added = await addCappedScript.run(
        redis,
        [app.key(user, 'friends')],
        [friend, MAX_FRIENDS, 30 * DAY_MS],
      )
      return added === 1
    },

    async removeFriend(user: string, friend: string): Promise<void> {
      await redis.srem(app.key(user, 'friends'), friend)
    },

    /** A player exists once signed in: their profile hash is created then. */
    async ensureProfile(user: string): Promise<void> {
      const key = app.key(user, 'profile')
      await redis
        .multi()
        .hsetnx(key, 'createdAt', Date.now())
        .pexpire(key, 30 * DAY_MS)
        .exec()
    },

    /** The profile "database": a hash per player; reads are slow on purpose, so the cache shows. */
    async loadProfile(user: string): Promise<Profile | null> {
      originLoads++
      await new Promise((resolve) => setTimeout(resolve, 40))
      const stored = await redis.hgetall(app.key(user, 'profile'))
      if (!stored.createdAt) return null
      return {
        user,
        motto: stored.motto ?? 'New here. Be gentle.',
        color: stored.color ?? '#4f7cff',
        updatedAt: Number(stored.updatedAt ?? 0),
      }
    },

    async saveProfile(user: string, motto: string, color: string): Promise<void> {
      const key = app.key(user, 'profile')
      await redis
        .multi()
        .hset(key, { motto, color, updatedAt: Date.now() })
        .pexpire(key, 30 * DAY_MS)
        .exec()
    },

    get originLoads() {
      return originLoads
    },

    async bonusClaimed(user: string, day: string): Promise<boolean> {
      return (await redis.hexists(app.key(user, 'bonus', day), 'grantedAt')) === 1
    },

    /** Writes today's bonus claim with the holder's fencing token. */
    async claimBonus(user: string, day: string, fence: number): Promise<'granted' | 'claimed' | 'fenced'> {
      const reply = await claimBonusScript.run(redis, [app.key(user, 'bonus', day)], [fence, 2 * DAY_MS])
      return reply === 1 ? 'granted' : reply === 0 ? 'claimed' : 'fenced'
    },

    async chatHistory(): Promise<ChatMessage[]> {
      const raw = await redis.lrange(app.key('chat', 'log'), 0, 49)
      return raw.map((line) => JSON.parse(line) as ChatMessage).reverse()
    },

    async appendChat(message: ChatMessage): Promise<void> {
      const key = app.key('chat', 'log')
      await redis.multi().lpush(key, JSON.stringify(message)).ltrim(key, 0, 49).pexpire(key, DAY_MS).exec()
    },

    async close(): Promise<void> {
      await Promise.allSettled([bus.close(), locks.close(), cache.close()])
    },
  }
}

export type Services = ReturnType<typeof createServices>
