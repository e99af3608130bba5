import { createHash } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { fileURLToPath } from 'node:url'
import {
  EVENT_CHANNEL,
  health,
  InvalidArgumentError,
  isConnectionError,
  isRpError,
  WaitTimeoutError,
} from '@rp/core'
import { byUser, rateLimit } from '@rp/ratelimit/express'
import { ExpressSessionStore } from '@rp/session/express'
import express, { type NextFunction, type Request, type Response } from 'express'
import session from 'express-session'
import { nanoid } from 'nanoid'
import { createDashboard } from './dashboard.js'
import { EventHub } from './hub.js'
import { BONUS_POINTS, type ChatMessage, MAX_FRIENDS, type Services } from './services.js'
import * as check from './validate.js'

declare module 'express-session' {
  interface SessionData {
    /** The @rp/session id behind this cookie: the user-indexed session "your devices" lists. */
    sid: string
    user: string
    timeZone: string
  }
}

interface Player {
  user: string
  sid: string
  timeZone: string
}

type PlayerRequest = Request & { player: Player }

export interface ArcadeOptions {
  services: Services
  /** Shown on the page, so two instances side by side can be told apart. */
  instance: string
  /** Signs the cookie; every instance of one deployment must share it. */
  secret: string
}

const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url))
const MAX_STREAMS = 1_000
const MAX_STREAMS_PER_IP = 20

/** JSON for anything an instrumentation event carries: errors become their message. */
function plain(value: unknown): unknown {
  try {
    return JSON.parse(
      JSON.stringify(value, (_key, v) =>
        v instanceof Error ? `${v.name}: ${v.message}` : typeof v === 'bigint' ? String(v) : v,
      ),
    )
  } catch {
    return { event: 'unserializable' }
  }
}

const handleOf = (sid: string) => createHash('sha256').update(sid).digest('base64url')
const today = () => new Date().toISOString().slice(0, 10)

/** Express route handlers may be async; a rejection goes to the error handler, never unhandled. */
const route =
  <R extends Request>(fn: (req: R, res: Response) => Promise<unknown>) =>
  (req: Request, res: Response, next: NextFunction) => {
    fn(req as R, res).catch(next)
  }

/** The arcade's HTTP app. Every /api route is rate limited; state lives only in Redis. */
export function createArcade({ services, instance, secret }: ArcadeOptions) {
  const { sessions, bus, cache, locks, allTime } = services
  const hub = new EventHub()
  const dashboard = createDashboard(services.redis)
  const app = express()
  app.disable('x-powered-by')
  // Clients connect directly unless TRUST_PROXY says otherwise: a forged X-Forwarded-For must not
  // buy a fresh rate-limit bucket.
  if (process.env.TRUST_PROXY) app.set('trust proxy', process.env.TRUST_PROXY)

  const store = new ExpressSessionStore({ sessions })
  app.use(express.static(PUBLIC_DIR, { index: 'index.html', maxAge: 0 }))
  app.use(express.json({ limit: '8kb' }))
  // The status probe comes before the session and the per-player limiter, so with Redis hung it
  // answers within the probe's bound plus the IP limiter's short timeout, not after a session read.
  app.get(
    '/api/status',
    rateLimit({ limiter: services.statusLimiter }),
    route(async (_req, res) => {
      const report = await health(services.redis, { timeoutMs: 800 })
      res.status(report.ok ? 200 : 503).json({ instance, redis: report })
    }),
  )
  app.use(
    '/api',
    session({
      store,
      secret,
      name: 'arcade.sid',
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { httpOnly: true, sameSite: 'lax', maxAge: 2 * 60 * 60_000 },
    }),
  )
  app.use(
    '/api',
    rateLimit({
      limiter: services.apiLimiter,
      key: byUser((req) => req.session?.user),
      // The event stream is one long request, and a page that cannot reach it cannot show the outage.
      skip: (req) => req.path === '/events',
    }),
  )

  /** The signed-in player, or null; a session ended elsewhere ends this cookie too. */
  async function loadPlayer(req: Request): Promise<Player | null> {
    if (!req.session) throw new RedisDownError()
    const sid = req.session.sid
    if (!sid) return null
    const current = await sessions.get(sid)
    if (!current) {
      await new Promise<void>((resolve) => req.session.destroy(() => resolve()))
      return null
    }
    return { user: current.userId ?? '', sid, timeZone: req.session.timeZone ?? 'UTC' }
  }

  const requirePlayer = (req: Request, res: Response, next: NextFunction) => {
    loadPlayer(req).then((player) => {
      if (!player) return void res.status(401).json({ error: 'signed-out' })
      ;(req as PlayerRequest).player = player
      next()
    }, next)
  }

  app.post(
    '/api/signin',
    route(async (req, res) => {
      if (!req.session) throw new RedisDownError()
      const b = check.body(req.body)
      const user = check.playerName(b.name)
      const zone = check.timeZone(b.timeZone)
      // Signing in again on this browser replaces its session: the old one leaves "your devices".
      if (req.session.sid) await sessions.destroy(req.session.sid)
      const created = await sessions.create(
        user,
        {},
        { meta: { userAgent: String(req.get('user-agent') ?? '').slice(0, 120), instance } },
      )
      await Promise.all([services.addZone(zone), services.ensureProfile(user)])
      // A new cookie id at sign-in: a cookie planted before it (fixation) is worth nothing after.
      await new Promise<void>((resolve, reject) => req.session.regenerate((e) => (e ? reject(e) : resolve())))
      req.session.sid = created.id
      req.session.user = user
      req.session.timeZone = zone
      res.json({ user, timeZone: zone, instance })
    }),
  )

  app.post(
    '/api/signout',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      await sessions.destroy(req.player.sid)
      await new Promise<void>((resolve) => req.session.destroy(() => resolve()))
      res.json({ ok: true })
    }),
  )

  app.get(
    '/api/me',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const { user, timeZone } = req.player
      res.json({ user, timeZone, friends: await services.friends(user), instance })
    }),
  )

  app.get(
    '/api/devices',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const mine = handleOf(req.player.sid)
      const devices = await sessions.listForUser(req.player.user)
      res.json({
        devices: devices
          .map((d) => ({ ...d, current: d.handle === mine }))
          .sort((a, b) => b.lastSeenAt - a.lastSeenAt),
      })
    }),
  )

  app.post(
    '/api/devices/logout-others',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const ended = await sessions.destroyAllForUser(req.player.user, { except: req.player.sid })
      res.json({ ended })
    }),
  )

  app.post(
    '/api/rounds/start',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      res.json(await services.startRound(req.player.user))
    }),
  )

  app.post(
    '/api/rounds',
    requirePlayer,
    rateLimit({ limiter: services.playLimiter, key: byUser((req) => req.session?.user) }),
    route(async (req: PlayerRequest, res) => {
      const roundId = check.roundId(check.body(req.body).roundId)
      const round = await services.finishRound(req.player.user, roundId)
      if (!round) {
        res
          .status(409)
          .json({ error: 'round-over', message: 'This round has ended or expired; start another' })
        return
      }
      const points = check.pointsFor(round.reactionMs)
      const submissionId = nanoid()
      if (points > 0)
        await services.scores.publish({
          user: req.player.user,
          points,
          submissionId,
          playedAt: Date.now(),
          timeZone: req.player.timeZone,
          kind: 'round',
        })
      // A click before green voids the round; the next one starts in the same answer.
      const next = round.reactionMs === null ? await services.startRound(req.player.user) : undefined
      res.json({ points, reactionMs: round.reactionMs, submissionId, next })
    }),
  )

  app.get(
    '/api/boards',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const { user, timeZone } = req.player
      const friends = await services.friends(user)
      const weeklyBoard = services.weekly(timeZone)
      const week = weeklyBoard.current()
      const [top, me, around, weeklyTop, weeklyMe, among] = await Promise.all([
        allTime.top(10),
        allTime.entry(user),
        allTime.around(user, 2, { fillBorders: true }),
        week.top(10),
        week.entry(user),
        allTime.among([user, ...friends]),
      ])
      const window = weeklyBoard.window()
      res.json({
        allTime: { top, me, around },
        weekly: { timeZone, startsAt: window.start, endsAt: window.end, top: weeklyTop, me: weeklyMe },
        friends: among,
      })
    }),
  )

  app.post(
    '/api/friends',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const friend = check.playerName(check.body(req.body).name, 'friend')
      if (friend === req.player.user) throw new InvalidArgumentError('friend', 'must be someone else')
      if (!(await services.addFriend(req.player.user, friend)))
        throw new InvalidArgumentError('friend', `at most ${MAX_FRIENDS} friends`)
      res.json({ friends: await services.friends(req.player.user) })
    }),
  )

  app.delete(
    '/api/friends/:name',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      await services.removeFriend(req.player.user, check.playerName(req.params.name, 'friend'))
      res.json({ friends: await services.friends(req.player.user) })
    }),
  )

  app.post(
    '/api/bonus',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const { user, timeZone } = req.player
      const day = today()
      try {
        const result = await locks.using(
          `bonus:${user}`,
          async (_signal, lock) => {
            // A slow grant, so clicks from two tabs or two instances really do overlap.
            await new Promise((resolve) => setTimeout(resolve, 150))
            if (await services.bonusClaimed(user, day)) return { outcome: 'claimed', token: lock.token }
            // The points first, the claim second: a crash between them leaves the bonus unclaimed, and
            // the next claim publishes the same submissionId again, which the boards count once.
            await services.scores.publish({
              user,
              points: BONUS_POINTS,
              submissionId: `bonus:${day}:${user}`,
              playedAt: Date.now(),
              timeZone,
              kind: 'bonus',
            })
            return { outcome: await services.claimBonus(user, day, lock.token), token: lock.token }
          },
          { ttlMs: 5_000, waitMs: 4_000 },
        )
        res.json({ ...result, instance, points: result.outcome === 'granted' ? BONUS_POINTS : 0 })
      } catch (error) {
        if (!(error instanceof WaitTimeoutError)) throw error
        res.status(409).json({ outcome: 'busy', instance, points: 0 })
      }
    }),
  )

  app.get(
    '/api/profile/:user',
    route(async (req, res) => {
      const user = check.playerName(req.params.user, 'user')
      const before = services.originLoads
      const profile = await cache.getOrSet(
        `profile:${user}`,
        async () => {
          // Only players who signed in have a card: nobody can fill the cache with made-up names.
          const found = await services.loadProfile(user)
          if (!found) throw new NotFoundError()
          return found
        },
        { tags: [`profile:${user}`] },
      )
      res.json({ profile, instance, fromOrigin: services.originLoads !== before })
    }),
  )

  app.put(
    '/api/profile',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const b = check.body(req.body)
      const motto = check.text(b.motto, 'motto', 80)
      const colour = check.color(b.color)
      await services.saveProfile(req.player.user, motto, colour)
      // Every instance's in-process copy drops too: the tag's keys are tracked by each client.
      await cache.invalidateTag(`profile:${req.player.user}`)
      await bus.publish('profile', { user: req.player.user })
      res.json({ ok: true })
    }),
  )

  app.get(
    '/api/chat',
    route(async (_req, res) => {
      res.json({ messages: await services.chatHistory() })
    }),
  )

  app.post(
    '/api/chat',
    requirePlayer,
    route(async (req: PlayerRequest, res) => {
      const message: ChatMessage = {
        user: req.player.user,
        text: check.text(check.body(req.body).text, 'text', 200),
        at: Date.now(),
      }
      await services.appendChat(message)
      res.json({ receivers: await bus.publish('chat', message) })
    }),
  )

  app.get(
    '/api/dashboard',
    route(async (_req, res) => {
      const snapshot = await dashboard.snapshot()
      res.json({ instance, ...snapshot, cache: cache.stats(), streams: hub.size, events: hub.recent })
    }),
  )

  app.get('/api/events', (req, res) => {
    const ip = req.ip ?? req.socket.remoteAddress ?? 'unknown'
    if (hub.size >= MAX_STREAMS || hub.countFor(ip) >= MAX_STREAMS_PER_IP) {
      res.status(429).json({ error: 'too-many-streams' })
      return
    }
    hub.attach(res, ip, { event: 'hello', data: { instance } })
  })

  app.use('/api', (_req, res) => {
    res.status(404).json({ error: 'not-found' })
  })

  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error)
    const status = (error as { status?: unknown }).status
    if (error instanceof NotFoundError) {
      res.status(404).json({ error: 'not-found' })
    } else if (error instanceof InvalidArgumentError) {
      res.status(400).json({ error: 'invalid-argument', argument: error.argument, message: error.message })
    } else if (error instanceof RedisDownError || isConnectionError(error)) {
      res.status(503).json({ error: 'redis-unavailable', message: (error as Error).message })
    } else if ((error as { type?: string }).type === 'entity.parse.failed') {
      res.status(400).json({ error: 'invalid-argument', argument: 'body', message: 'must be JSON' })
    } else if (typeof status === 'number' && status >= 400 && status < 500) {
      // body-parser and the router mark the client's mistakes (too large, bad encoding, bad URL).
      res.status(status).json({ error: 'bad-request', message: (error as Error).message })
    } else {
      res
        .status(500)
        .json({ error: 'internal', message: isRpError(error) ? error.message : 'unexpected error' })
      console.error('[arcade]', error)
    }
  })

  // Relays: Redis pub/sub → every page of this instance; this process's instrumentation → the feed.
  const onEvent = (message: unknown) =>
    hub.send('rp', { origin: instance, at: Date.now(), event: plain(message) }, { remember: true })
  subscribe(EVENT_CHANNEL, onEvent)
  bus.on('disconnected', ({ error }) =>
    hub.send(
      'rp',
      { origin: instance, at: Date.now(), event: plain({ package: 'pubsub', event: 'disconnected', error }) },
      { remember: true },
    ),
  )
  bus.on('resubscribed', (e) => {
    hub.send(
      'rp',
      { origin: instance, at: Date.now(), event: { package: 'pubsub', event: 'resubscribed', ...e } },
      { remember: true },
    )
    // What was published while the subscriber was away is lost: every page reloads its views.
    hub.send('resync', e)
  })

  const relays = {
    board: (change: unknown) => hub.send('board', change),
    chat: (message: unknown) => hub.send('chat', message),
    profile: (change: unknown) => hub.send('profile', change),
    ops: (ops: unknown) => hub.send('rp', ops, { remember: true }),
  } as const
  const subscribed = new Set<keyof typeof relays>()

  /** Subscribes the relays; safe to call again after a failure, it only adds what is missing. */
  async function start(): Promise<void> {
    await Promise.all(
      (Object.keys(relays) as Array<keyof typeof relays>)
        .filter((channel) => !subscribed.has(channel))
        .map(async (channel) => {
          await bus.subscribe(channel, relays[channel])
          subscribed.add(channel)
        }),
    )
  }

  function close(): void {
    unsubscribe(EVENT_CHANNEL, onEvent)
    hub.close()
    store.close?.()
  }

  return { app, hub, start, close }
}

/** A profile of nobody who ever signed in. */
class NotFoundError extends Error {}

/** express-session skipped the session because its store is disconnected: Redis is down. */
class RedisDownError extends Error {
  constructor() {
    super('Redis is unreachable; the session store is disconnected')
  }
}
