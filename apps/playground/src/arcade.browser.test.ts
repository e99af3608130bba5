import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort, type RedisServer, startRedis } from '@rp/testing'
// The shared cluster's seed nodes come from the harness's global setup (its typed inject key).
import '@rp/testing/vitest'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest'
import { type ArcadeProcess, spawnArcade, stopArcade } from './spawn.js'

// The arcade in real Chromium (Debian's package, driven by playwright-core): two app instances and
// the score worker as separate processes, on a redis-server of this test's own, which it kills.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url))

let redis: RedisServer
let worker: ArcadeProcess
const apps: ArcadeProcess[] = []
const urls: string[] = []
let browser: Browser
const contexts: BrowserContext[] = []
let env: Record<string, string>
const pageErrors: string[] = []

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
  mkdirSync(ARTIFACTS, { recursive: true })
  // Append-only with fsync per write, as `pnpm start` runs it: a killed server comes back with its data.
  redis = await startRedis({ ownServer: true, args: ['--appendonly', 'yes', '--appendfsync', 'always'] })
  env = { REDIS_URL: redis.url, ARCADE_SECRET: 'test-secret' }
  worker = await spawnArcade('worker', env, { silent: true })
  for (const instance of ['A', 'B']) {
    const port = await freePort()
    apps.push(
      await spawnArcade('app', { ...env, ARCADE_INSTANCE: instance, PORT: String(port) }, { silent: true }),
    )
    urls.push(`http://127.0.0.1:${port}`)
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
}, 90_000)

// A script error on any page fails the test that caused it.
afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([])
})

afterAll(async () => {
  await browser?.close()
  await Promise.all([...apps, worker].filter(Boolean).map((p) => stopArcade(p, 5_000)))
  await redis?.stop()
}, 60_000)

/** A fresh browser (own cookies) signed in as `name` on instance `app` (0 = A, 1 = B), or at a URL. */
async function player(name: string, app: number | string = 0): Promise<Page> {
  const context = await browser.newContext({
    viewport: { width: 1360, height: 1000 },
    timezoneId: 'Europe/Berlin',
  })
  contexts.push(context)
  const page = await context.newPage()
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`))
  await page.goto(typeof app === 'string' ? app : urls[app]!)
  await page.getByTestId('name').fill(name)
  await page.getByTestId('signin-form').locator('button').click()
  await page.getByTestId('game-view').waitFor()
  return page
}

/** Plays one real round through the target; resolves with the points the server gave. */
async function playRound(page: Page): Promise<number> {
  const target = page.getByTestId('target')
  await target.click()
  await page.locator('.target.go').waitFor({ timeout: 5_000 })
  // A human's reaction: a click under 100 ms after green is a guess, worth 0 points.
  await page.waitForTimeout(150)
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/rounds'))
  await target.click()
  const body = (await (await answered).json()) as { points: number }
  return body.points
}

const boardScore = (page: Page, member: string) =>
  page.locator(`[data-testid="board"] li[data-member="${member}"] b`).textContent({ timeout: 1_000 })

describe('the arcade in Chromium', () => {
  it('signs in, plays a round, and shows the score and rank', async () => {
    const visitor = await (await browser.newContext({ viewport: { width: 1360, height: 1000 } })).newPage()
    await visitor.goto(urls[0]!)
    await visitor.getByTestId('signin').waitFor()
    await visitor.screenshot({ path: `${ARTIFACTS}/sign-in.png` })
    await visitor.context().close()
    const page = await player('ana')
    await page.screenshot({ path: `${ARTIFACTS}/signed-in.png` })
    const points = await playRound(page)
    expect(points).toBeGreaterThan(0)
    await expect.poll(() => page.getByTestId('my-score').textContent()).toBe(String(points))
    await expect.poll(() => page.getByTestId('my-rank').textContent()).toBe('#1')
    await expect.poll(() => page.getByTestId('my-weekly-rank').textContent()).toBe('#1')
    expect(await page.getByTestId('my-percentile').textContent()).toBe('100.0')
    await page.screenshot({ path: `${ARTIFACTS}/game.png`, fullPage: true })
  })

  it('pushes a leaderboard change to another browser on the other instance within 1 s (SSE)', async () => {
    const watcher = await player('bo', 1)
    const playerPage = await player('cat', 0)
    let total = 0
    for (let round = 0; round < 2; round++) {
      total += await playRound(playerPage)
      const queuedAt = Date.now()
      // No reload and no polling of the board on the watcher's side: only the event stream moves it.
      await expect
        .poll(() => boardScore(watcher, 'cat').catch(() => null), { timeout: 1_000, interval: 20 })
        .toBe(String(total))
      expect(Date.now() - queuedAt).toBeLessThan(1_000)
    }
  })

  it('answers rapid clicks with 429 and shows the quota', async () => {
    const page = await player('dan')
    const target = page.getByTestId('target')
    // Arm: every click before green ends the round as too soon, and the answer arms the next one.
    const started = page.waitForResponse((r) => r.url().endsWith('/api/rounds/start'))
    await target.click()
    await started
    const statuses: number[] = []
    page.on('response', (r) => {
      if (r.url().endsWith('/api/rounds')) statuses.push(r.status())
    })
    for (let i = 0; i < 12; i++) await target.click()
    await expect.poll(() => statuses.length).toBe(12)
    // A bucket of 6: the first 6 pass the limiter, then 429s (a token refilled mid-way may let one
    // more through). A click that races the answer to the one before gets 409: that round is over.
    // Statuses are in the order the answers arrived: a 409 (one GETDEL) can overtake the 200 of the
    // click it raced (which goes on to score and start the next round), so a 200 is among them.
    expect(statuses.slice(0, 6).every((s) => s === 200 || s === 409)).toBe(true)
    expect(statuses.slice(0, 6)).toContain(200)
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(4)
    expect(await page.getByTestId('toast').textContent()).toBe('Slow down: rate limited (429)')
    expect(await page.getByTestId('quota').textContent()).toBe('rounds left 0')
    await page.screenshot({ path: `${ARTIFACTS}/rate-limited.png` })
  })

  it('grants the daily bonus once when two browsers on two instances claim it together', async () => {
    const first = await player('eve', 0)
    const second = await player('eve', 1)
    await Promise.all([first.getByTestId('bonus').click(), second.getByTestId('bonus').click()])
    const outcomes = await Promise.all(
      [first, second].map(async (page) => {
        const result = page.getByTestId('bonus-result')
        await expect.poll(() => result.getAttribute('data-outcome')).toMatch(/granted|claimed/)
        return result.getAttribute('data-outcome')
      }),
    )
    expect(outcomes.sort()).toEqual(['claimed', 'granted'])
    // The board counts it once: eve has the bonus (500) and nothing else.
    await expect.poll(() => first.getByTestId('my-score').textContent(), { timeout: 5_000 }).toBe('500')
  })

  it("shows an edited profile on the other instance's page (tag invalidation and tracking)", async () => {
    const owner = await player('fay', 0)
    await playRound(owner)
    const viewer = await player('gil', 1)
    await viewer.locator('[data-testid="board"] li[data-member="fay"] .who').click({ timeout: 5_000 })
    await expect.poll(() => viewer.getByTestId('motto').textContent()).toBe('New here. Be gentle.')
    // Read again: now from instance B's in-process copy.
    await viewer.locator('[data-testid="board"] li[data-member="fay"] .who').click({ timeout: 5_000 })
    await expect
      .poll(() => viewer.getByTestId('profile-source').textContent())
      .toMatch(/Served from cache by instance B/)

    await owner
      .locator('[data-testid="profile-form"] input[name="motto"]')
      .fill('Fastest hands in the west', { timeout: 5_000 })
    await owner.locator('[data-testid="profile-form"] button').click({ timeout: 5_000 })
    await expect
      .poll(() => viewer.getByTestId('motto').textContent(), { timeout: 3_000 })
      .toBe('Fastest hands in the west')
  })

  it('"log out everywhere else" ends the other browser\'s session and keeps this one', async () => {
    const kept = await player('hal', 0)
    const ended = await player('hal', 1)
    // The devices panel refreshes every 5 s.
    await expect
      .poll(async () => kept.getByTestId('devices').locator('li').count(), { timeout: 7_000 })
      .toBe(2)
    await kept.getByTestId('logout-others').click()
    await ended.getByTestId('signin').waitFor({ timeout: 5_000 })
    expect(await ended.getByTestId('signin-error').textContent()).toMatch(/session ended/)
    await expect
      .poll(async () => kept.getByTestId('devices').locator('li').count(), { timeout: 3_000 })
      .toBe(1)
    expect(await kept.getByTestId('game-view').isVisible()).toBe(true)
  })

  it('rejects bad input with 400 naming the field, before any write', async () => {
    const page = await player('ivy', 0)
    type Answer = { status: number; body: { roundId: string; delayMs: number } & Record<string, unknown> }
    const answer = (path: string, body: unknown): Promise<Answer> =>
      page.evaluate(
        async ([p, b]) => {
          const res = await fetch(p as string, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(b),
          })
          return { status: res.status, body: (await res.json()) as Answer['body'] }
        },
        [path, body] as const,
      )
    // The client cannot name its own reaction time: a round is only an id the server handed out.
    expect(await answer('/api/rounds', { reactionMs: 100 })).toMatchObject({
      status: 400,
      body: { argument: 'roundId' },
    })
    const { body: round } = await answer('/api/rounds/start', {})
    await page.waitForTimeout(round.delayMs + 150)
    expect(await answer('/api/rounds', { roundId: round.roundId })).toMatchObject({ status: 200 })
    expect(await answer('/api/rounds', { roundId: round.roundId })).toMatchObject({
      status: 409,
      body: { error: 'round-over' },
    })
    expect(await answer('/api/chat', { text: '' })).toMatchObject({ status: 400, body: { argument: 'text' } })
    expect(await answer('/api/friends', { name: 'a*b{c}' })).toMatchObject({
      status: 400,
      body: { argument: 'friend' },
    })
    expect(await answer('/api/signin', { name: 'ivy', timeZone: 'Mars/Olympus' })).toMatchObject({
      status: 400,
      body: { argument: 'timeZone' },
    })
    // Look-alikes fold into the plain name (NFKC): a fullwidth 'Ｉ' signs in as 'I'.
    expect(await answer('/api/signin', { name: 'Ｉvy', timeZone: 'UTC' })).toMatchObject({
      status: 200,
      body: { user: 'Ivy' },
    })
  })

  it('shows a Redis outage and recovers without a reload', async () => {
    const page = await player('jo', 1)
    await page.evaluate(() => {
      ;(globalThis as unknown as { marker: number }).marker = 42
    })
    await redis.kill()
    await page.getByTestId('outage').waitFor({ timeout: 5_000 })
    expect(await page.getByTestId('redis-status').textContent()).toBe('Redis down')
    await page.screenshot({ path: `${ARTIFACTS}/outage.png` })
    await redis.restart()
    await page.getByTestId('outage').waitFor({ state: 'hidden', timeout: 15_000 })
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42)
    // Still signed in (the session survived in the append-only file) and the game works again.
    expect(await page.getByTestId('whoami').textContent()).toBe('jo')
    const points = await playRound(page)
    await expect
      .poll(() => page.getByTestId('my-score').textContent(), { timeout: 10_000 })
      .toBe(String(points))
  }, 60_000)

  it('counts every queued score exactly once after the worker is SIGKILLed', async () => {
    // This worker acks 800 ms after its writes, so a kill leaves written-but-unacknowledged events,
    // which the channel delivers again: the boards must not count them twice.
    await stopArcade(worker)
    worker = await spawnArcade('worker', { ...env, ARCADE_ACK_DELAY_MS: '800' }, { silent: true })
    const page = await player('kim', 0)
    // Five rounds at once, each ended 150 ms after its green: five score events in a burst.
    const burst = () =>
      page.evaluate(async () => {
        const post = async <T>(path: string, body: unknown): Promise<T> =>
          (
            await fetch(path, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(body),
            })
          ).json() as Promise<T>
        const rounds = await Promise.all(
          Array.from({ length: 5 }, () =>
            post<{ roundId: string; delayMs: number }>('/api/rounds/start', {}),
          ),
        )
        return Promise.all(
          rounds.map(
            (r) =>
              new Promise<number>((resolve) =>
                setTimeout(
                  async () =>
                    resolve((await post<{ points: number }>('/api/rounds', { roundId: r.roundId })).points),
                  r.delayMs + 150,
                ),
              ),
          ),
        )
      })
    // A loaded machine can end a round past 1 s (0 points, nothing published): another burst then.
    const points = await burst()
    for (let attempt = 0; attempt < 3 && !points.some((p) => p > 0); attempt++)
      points.push(...(await burst()))
    expect(points.some((p) => p > 0)).toBe(true)
    const expected = points.reduce((sum, p) => sum + p, 0)
    await expect.poll(() => page.getByTestId('my-score').textContent(), { timeout: 15_000 }).not.toBe('0')
    worker.child.kill('SIGKILL')
    await worker.exited
    worker = await spawnArcade('worker', env, { silent: true })
    await expect
      .poll(() => page.getByTestId('my-score').textContent(), { timeout: 15_000 })
      .toBe(String(expected))
    // Past the visibility timeout (3 s) every redelivery has happened: still exactly once.
    await new Promise((resolve) => setTimeout(resolve, 4_000))
    await page.reload()
    await expect.poll(() => page.getByTestId('my-score').textContent()).toBe(String(expected))
    await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true })

    // SIGTERM: the worker finishes, acknowledges and exits cleanly.
    await stopArcade(worker)
    expect((await worker.exited).code).toBe(0)
  }, 60_000)

  it('caps the event streams one client address may hold', async () => {
    // Last in this block: the open pages of earlier tests hold some of this address's 20 streams.
    const aborts: AbortController[] = []
    const statuses: number[] = []
    try {
      for (let i = 0; i < 25; i++) {
        const abort = new AbortController()
        aborts.push(abort)
        const res = await fetch(`${urls[0]}/api/events`, { signal: abort.signal })
        statuses.push(res.status)
        if (res.status === 429) expect(await res.json()).toEqual({ error: 'too-many-streams' })
      }
    } finally {
      for (const abort of aborts) abort.abort()
    }
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(20)
    expect(statuses.at(-1)).toBe(429)
  })
})

describe('the arcade on Redis Cluster (3 masters, 3 replicas)', () => {
  const procs: ArcadeProcess[] = []
  const clusterUrls: string[] = []

  beforeAll(async () => {
    const nodes = inject('rpClusterNodes')
      .map((n) => `${n.host}:${n.port}`)
      .join(',')
    const clusterEnv = { REDIS_CLUSTER_NODES: nodes, ARCADE_SECRET: 'test-secret' }
    procs.push(await spawnArcade('worker', clusterEnv, { silent: true }))
    for (const instance of ['A', 'B']) {
      const port = await freePort()
      procs.push(
        await spawnArcade(
          'app',
          { ...clusterEnv, ARCADE_INSTANCE: instance, PORT: String(port) },
          { silent: true },
        ),
      )
      clusterUrls.push(`http://127.0.0.1:${port}`)
    }
  }, 90_000)

  afterAll(async () => {
    await Promise.all(procs.map((p) => stopArcade(p, 5_000)))
  }, 30_000)

  it('plays, ranks, pushes the board to the other instance and grants one bonus', async () => {
    const page = await player('lou', clusterUrls[0]!)
    const other = await player('lou', clusterUrls[1]!)
    const points = await playRound(page)
    await expect.poll(() => page.getByTestId('my-rank').textContent(), { timeout: 5_000 }).toBe('#1')
    await expect
      .poll(() => boardScore(other, 'lou').catch(() => null), { timeout: 5_000 })
      .toBe(String(points))
    await Promise.all([page.getByTestId('bonus').click(), other.getByTestId('bonus').click()])
    const outcomes = await Promise.all(
      [page, other].map(async (p) => {
        await expect
          .poll(() => p.getByTestId('bonus-result').getAttribute('data-outcome'))
          .toMatch(/granted|claimed/)
        return p.getByTestId('bonus-result').getAttribute('data-outcome')
      }),
    )
    expect(outcomes.sort()).toEqual(['claimed', 'granted'])
    await expect
      .poll(() => page.getByTestId('my-score').textContent(), { timeout: 5_000 })
      .toBe(String(points + 500))
    // The dashboard reads every master.
    await expect
      .poll(() => page.getByTestId('dash-health').textContent(), { timeout: 5_000 })
      .toMatch(/^ok · cluster/)
    await page.screenshot({ path: `${ARTIFACTS}/cluster.png`, fullPage: true })
  })
})
