import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { EVENT_CHANNEL } from '@rp/core'
import type { Worker } from '@rp/pubsub'
import type { Services } from './services.js'

/** Relayed instrumentation events per second at most: an outage must not become a flood. */
const RELAY_PER_SECOND = 10
const ZONES_REFRESH_MS = 5_000

/**
 * The score worker: each event on the durable channel becomes a write to the all-time board and to
 * the weekly board of every zone players use. Every write carries the event's submissionId, so an
 * event delivered again after a crash (at-least-once) changes no board twice: exactly-once effect.
 */
export function startScoreWorker(
  services: Services,
  options: { consumer: string; ackDelayMs?: number },
): Worker {
  // The zones in use, refreshed every few seconds; the set is capped when players sign in.
  let zones: string[] = []
  let zonesAt = 0
  const zonesFor = async (own: string) => {
    if (Date.now() - zonesAt > ZONES_REFRESH_MS) {
      zones = await services.zones()
      zonesAt = Date.now()
    }
    // The player's own zone always: their weekly board never misses their score.
    return [...new Set([own, ...zones])]
  }

  return services.scores.consume(
    'boards',
    async (event) => {
      const { user, points, submissionId, playedAt, kind } = event
      const weekly = (await zonesFor(event.timeZone)).map((zone) =>
        services.weekly(zone).at(playedAt).submit(user, points, { submissionId }),
      )
      const [result] = await Promise.all([services.allTime.submit(user, points, { submissionId }), ...weekly])
      await services.bus.publish('board', { user, points, total: result.score ?? 0, rank: result.rank, kind })
      // A demo knob (ARCADE_ACK_DELAY_MS): the writes are done but not yet acknowledged, the window in
      // which a crash makes the channel deliver the event again.
      if (options.ackDelayMs) await new Promise((resolve) => setTimeout(resolve, options.ackDelayMs))
    },
    { concurrency: 4, visibilityTimeoutMs: 3_000, maxDeliveries: 20, consumer: options.consumer },
  )
}

/** Sends this process's instrumentation events to the pages, over pub/sub, while Redis is up. */
export function relayEvents(services: Services, origin: string): () => void {
  let windowStart = 0
  let sent = 0
  const relay = (message: unknown) => {
    const now = Date.now()
    if (now - windowStart >= 1_000) {
      windowStart = now
      sent = 0
    }
    if (services.redis.status !== 'ready' || ++sent > RELAY_PER_SECOND) return
    let event: Record<string, unknown>
    try {
      event = JSON.parse(
        JSON.stringify(message, (_k, v) => (v instanceof Error ? `${v.name}: ${v.message}` : v)),
      )
    } catch {
      return
    }
    services.bus.publish('ops', { origin, at: now, event }).catch(() => {})
  }
  subscribe(EVENT_CHANNEL, relay)
  return () => unsubscribe(EVENT_CHANNEL, relay)
}
