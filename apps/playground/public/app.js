// The arcade's page: plain ES modules, no build step. Every panel reads its data from the API; live
// changes arrive over Server-Sent Events, which the browser reconnects on its own after an outage.

const $ = (id) => document.querySelector(`[data-testid="${id}"]`)
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'

/** Builds an element; strings become text nodes, so nothing a player types is ever parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'style') el.setAttribute('style', v)
    else el.setAttribute(k, v)
  }
  for (const child of children.flat()) if (child != null) el.append(child)
  return el
}

const state = { user: null, board: 'allTime', boards: null, profileOf: null, outage: null, quota: null }

let toastTimer
function toast(message) {
  const el = $('toast')
  el.textContent = message
  el.hidden = false
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => (el.hidden = true), 2500)
}

class HttpError extends Error {
  constructor(status, body) {
    super(body?.message || body?.error || `HTTP ${status}`)
    this.status = status
    this.body = body
  }
}

/** Every API call: a 401 shows the sign-in, a 503 the outage banner, a 429 the quota. */
async function api(method, path, body) {
  let res
  try {
    res = await fetch(path, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    })
  } catch (error) {
    setOutage('app')
    throw error
  }
  const json = await res.json().catch(() => null)
  if (res.status === 503) setOutage('redis')
  if (res.status === 401 && state.user) signedOut('Your session ended (signed out on another device).')
  if (!res.ok) throw new HttpError(res.status, json)
  return { json, res }
}

// ----- status and outage -----

function setOutage(kind) {
  if (state.outage === kind) return
  state.outage = kind
  const banner = $('outage')
  const pill = $('redis-status')
  if (!kind) {
    banner.hidden = true
    return
  }
  banner.hidden = false
  banner.textContent =
    kind === 'redis'
      ? 'Redis is unreachable. The app keeps answering and retries; this page recovers on its own.'
      : 'This app instance is unreachable. Retrying…'
  pill.textContent = kind === 'redis' ? 'Redis down' : 'app down'
  pill.className = 'pill bad'
}

async function pollStatus() {
  try {
    const res = await fetch('/api/status')
    const body = await res.json().catch(() => null)
    if (body?.instance) $('instance').textContent = `instance ${body.instance}`
    if (res.ok) {
      const recovered = state.outage !== null
      state.outage = null
      $('outage').hidden = true
      const pill = $('redis-status')
      pill.textContent = `Redis ok · ${body.redis.latencyMs.toFixed(1)} ms`
      pill.className = 'pill good'
      if (recovered) refreshAll()
    } else if (res.status === 503) setOutage('redis')
  } catch {
    setOutage('app')
  }
}

// ----- session -----

function signedOut(message) {
  state.user = null
  $('game-view').hidden = true
  $('signin').hidden = false
  $('whoami').hidden = true
  if (message) {
    $('signin-error').textContent = message
    $('signin-error').hidden = false
  }
}

function signedIn(me) {
  state.user = me.user
  $('signin').hidden = true
  $('signin-error').hidden = true
  $('game-view').hidden = false
  $('whoami').hidden = false
  $('whoami').textContent = me.user
  if (!state.profileOf) state.profileOf = me.user
  refreshAll()
}

async function loadMe() {
  try {
    const { json } = await api('GET', '/api/me')
    if (state.user !== json.user) signedIn(json)
  } catch (error) {
    if (error.status === 401) signedOut(state.user ? 'Your session ended.' : null)
  }
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const name = new FormData(event.target).get('name')
  try {
    const { json } = await api('POST', '/api/signin', { name, timeZone })
    signedIn(json)
  } catch (error) {
    $('signin-error').textContent = error.message
    $('signin-error').hidden = false
  }
})

$('signout').addEventListener('click', async () => {
  await api('POST', '/api/signout').catch(() => {})
  state.profileOf = null
  signedOut(null)
})

$('logout-others').addEventListener('click', async () => {
  try {
    const { json } = await api('POST', '/api/devices/logout-others')
    toast(`Ended ${json.ended} other session${json.ended === 1 ? '' : 's'}`)
    await loadDevices()
  } catch (error) {
    toast(error.message)
  }
})

async function loadDevices() {
  const { json } = await api('GET', '/api/devices')
  $('devices').replaceChildren(
    ...json.devices.map((d) =>
      h(
        'li',
        { 'data-current': String(d.current) },
        h('b', {}, `#${d.idHint}`),
        d.current ? h('span', { class: 'chip' }, 'this device') : null,
        h(
          'div',
          { class: 'muted small' },
          `${browserName(d.meta.userAgent)} · via instance ${d.meta.instance ?? '?'}`,
        ),
        h('div', { class: 'muted small' }, `signed in ${ago(d.createdAt)}, last seen ${ago(d.lastSeenAt)}`),
      ),
    ),
  )
}

function browserName(ua = '') {
  if (/HeadlessChrome/.test(ua)) return 'Headless Chrome'
  if (/Firefox\//.test(ua)) return 'Firefox'
  if (/Edg\//.test(ua)) return 'Edge'
  if (/Chrome\//.test(ua)) return 'Chrome'
  if (/Safari\//.test(ua)) return 'Safari'
  return ua.slice(0, 30) || 'unknown browser'
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s}s ago`
  if (s < 3600) return `${Math.round(s / 60)}m ago`
  return `${Math.round(s / 3600)}h ago`
}

// ----- the game -----

const target = $('target')
let phase = 'idle'
let round = null
let goTimer

function setPhase(next, label) {
  phase = next
  target.className = `target ${next}`
  target.textContent = label
}

target.addEventListener('click', () => {
  if (phase === 'idle') return startRound()
  // The server measures the reaction from the start it handed out: the page only says "now".
  if (phase === 'waiting' || phase === 'go') return finishRound(phase === 'go')
})

/** Shows green after the delay the server chose for this round. */
function arm(next) {
  round = next
  setPhase('waiting', 'Wait for green…')
  clearTimeout(goTimer)
  goTimer = setTimeout(() => setPhase('go', 'Click!'), next.delayMs)
}

async function startRound() {
  setPhase('waiting', 'Wait for green…')
  try {
    const { json } = await api('POST', '/api/rounds/start')
    arm(json)
  } catch (error) {
    setPhase('idle', 'Start round')
    $('result').textContent = error.message
  }
}

async function finishRound(green) {
  const current = round
  if (!current) return
  if (green) {
    clearTimeout(goTimer)
    setPhase('idle', 'Start round')
  }
  try {
    const { json, res } = await api('POST', '/api/rounds', { roundId: current.roundId })
    showQuota(res)
    $('result').textContent =
      json.reactionMs === null ? 'Too soon! 0 points.' : `${json.reactionMs} ms → ${json.points} points`
    // A click before green voided the round; the answer carries the next one.
    if (json.next) arm(json.next)
    else if (round === current) round = null
  } catch (error) {
    if (error.status === 429) {
      const retry = error.body?.retryAfterSeconds ?? 1
      $('result').textContent = `429 Too Many Requests: wait ${retry}s`
      showQuota(null, 0)
      toast('Slow down: rate limited (429)')
    } else if (error.status === 409) {
      // A click that raced the answer to the previous one: that round is over already.
      if (phase === 'idle') $('result').textContent = 'That round is over; start another.'
    } else $('result').textContent = error.message
  }
}

/** Reads the IETF `RateLimit` header (`"burst";r=4;t=1`): the smallest remaining of the policies. */
function showQuota(res, forced) {
  let remaining = forced
  if (remaining === undefined && res) {
    const header = res.headers.get('ratelimit') || ''
    const values = [...header.matchAll(/r=(\d+)/g)].map((m) => Number(m[1]))
    if (values.length) remaining = Math.min(...values)
  }
  if (remaining === undefined) return
  state.quota = remaining
  const pill = $('quota')
  pill.textContent = `rounds left ${remaining}`
  pill.className = remaining === 0 ? 'pill bad' : remaining <= 2 ? 'pill warn' : 'pill'
}

// ----- boards -----

function boardRow(entry, { flash } = {}) {
  const me = entry.member === state.user
  return h(
    'li',
    {
      class: `${me ? 'me' : ''} ${flash === entry.member ? 'flash' : ''}`.trim(),
      'data-member': entry.member,
    },
    h('span', { class: 'rank' }, entry.rank == null ? '–' : `#${entry.rank}`),
    h(
      'span',
      {
        class: 'who',
        onclick: () => showProfile(entry.member).catch(() => toast(`${entry.member} has no card yet`)),
      },
      entry.member,
    ),
    h('b', {}, String(entry.score ?? 0)),
  )
}

let boardsTimer
let lastFlash = null
function scheduleBoards(flash, delayMs = 60) {
  lastFlash = flash ?? lastFlash
  clearTimeout(boardsTimer)
  // A failed load (Redis away, or just back) is tried again each second until one succeeds: the
  // change that asked for it is announced once, so nothing else would redraw the boards.
  boardsTimer = setTimeout(() => loadBoards().catch(() => scheduleBoards(null, 1_000)), delayMs)
}

async function loadBoards() {
  if (!state.user) return
  const { json } = await api('GET', `/api/boards`)
  state.boards = json
  renderBoards()
  const me = json.allTime.me
  $('my-score').textContent = me ? String(me.score) : '0'
  $('my-rank').textContent = me?.rank ? `#${me.rank}` : '–'
  $('my-percentile').textContent = me?.percentile != null ? `${me.percentile.toFixed(1)}` : '–'
  $('my-weekly-rank').textContent = json.weekly.me?.rank ? `#${json.weekly.me.rank}` : '–'
  $('around').replaceChildren(...json.allTime.around.map((e) => boardRow(e)))
  $('friends').replaceChildren(
    ...json.friends.map((e) => {
      const row = boardRow({ member: e.member, score: e.score, rank: e.rank == null ? null : e.rank })
      if (e.member !== state.user)
        row.append(
          h(
            'button',
            {
              type: 'button',
              class: 'remove',
              title: `Remove ${e.member}`,
              onclick: () => removeFriend(e.member),
            },
            '×',
          ),
        )
      return row
    }),
  )
  lastFlash = null
}

function renderBoards() {
  const json = state.boards
  if (!json) return
  const weekly = state.board === 'weekly'
  const rows = weekly ? json.weekly.top : json.allTime.top
  const fmt = (ms) =>
    new Date(ms).toLocaleString(undefined, {
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      hour: '2-digit',
      minute: '2-digit',
    })
  $('board-caption').textContent = weekly
    ? `Week of ${fmt(json.weekly.startsAt)} – ${fmt(json.weekly.endsAt)} (${json.weekly.timeZone})`
    : 'Total points since the beginning; ties go to whoever got there first.'
  $('board').replaceChildren(
    ...(rows.length
      ? rows.map((e) => boardRow(e, { flash: lastFlash }))
      : [h('li', { class: 'muted' }, 'No scores yet')]),
  )
}

for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => {
    state.board = tab.dataset.board
    for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t === tab)
    renderBoards()
  })
}

async function removeFriend(name) {
  await api('DELETE', `/api/friends/${encodeURIComponent(name)}`).catch((error) => toast(error.message))
  scheduleBoards(null, 0)
}

$('friend-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const input = event.target.elements.friend
  try {
    await api('POST', '/api/friends', { name: input.value })
    input.value = ''
    scheduleBoards(null, 0)
  } catch (error) {
    toast(error.message)
  }
})

// ----- bonus -----

$('bonus').addEventListener('click', async () => {
  const out = $('bonus-result')
  out.textContent = 'Claiming…'
  try {
    const { json } = await api('POST', '/api/bonus')
    out.dataset.outcome = json.outcome
    out.textContent =
      json.outcome === 'granted'
        ? `Granted +${json.points} (fencing token ${json.token}, instance ${json.instance})`
        : `Already claimed today (fencing token ${json.token}, instance ${json.instance})`
  } catch (error) {
    out.dataset.outcome = error.body?.outcome ?? 'error'
    out.textContent = error.body?.outcome === 'busy' ? 'Another tab is claiming; try again.' : error.message
  }
})

// ----- profile (cache) -----

async function showProfile(user) {
  state.profileOf = user
  const { json } = await api('GET', `/api/profile/${encodeURIComponent(user)}`)
  const p = json.profile
  $('profile').replaceChildren(
    h('div', { class: 'avatar', style: `background:${p.color}` }, p.user.slice(0, 1).toUpperCase()),
    h('div', {}, h('div', { class: 'name' }, p.user), h('div', { 'data-testid': 'motto' }, p.motto)),
  )
  $('profile-source').textContent = json.fromOrigin
    ? `Loaded from the profile store (40 ms) by instance ${json.instance}, now cached`
    : `Served from cache by instance ${json.instance}`
  $('profile-form').hidden = user !== state.user
  if (user === state.user) {
    $('profile-form').elements.motto.value = p.motto
    $('profile-form').elements.color.value = p.color
  }
}

$('profile-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const f = event.target.elements
  try {
    await api('PUT', '/api/profile', { motto: f.motto.value, color: f.color.value })
    toast('Profile saved; every instance drops its cached copy')
  } catch (error) {
    toast(error.message)
  }
})

// ----- chat -----

function chatLine(m) {
  return h('li', {}, h('b', {}, m.user), m.text)
}

async function loadChat() {
  const { json } = await api('GET', '/api/chat')
  $('chat').replaceChildren(...json.messages.map(chatLine))
  $('chat').scrollTop = $('chat').scrollHeight
}

$('chat-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const input = event.target.elements.text
  try {
    await api('POST', '/api/chat', { text: input.value })
    input.value = ''
  } catch (error) {
    toast(error.message)
  }
})

// ----- dashboard -----

async function loadDashboard() {
  let json
  try {
    ;({ json } = await api('GET', '/api/dashboard'))
  } catch {
    $('dash-health').textContent = 'unreachable'
    return
  }
  const hl = json.health
  $('dash-health').textContent = hl.ok
    ? `ok · ${hl.role} · Redis ${hl.version} · ${hl.latencyMs.toFixed(2)} ms`
    : `down: ${hl.error ?? 'no answer'}`
  const m = json.memory
  $('dash-memory').textContent = m.error
    ? m.error
    : `${(m.usedBytes / 1048576).toFixed(1)} MB used · ${m.maxmemoryBytes ? `${(m.maxmemoryBytes / 1048576).toFixed(0)} MB max` : 'no maxmemory'} · ${m.policy}`
  const warnings = m.warnings ?? []
  $('dash-warnings').replaceChildren(
    ...(warnings.length ? warnings.map((w) => h('li', {}, w)) : [h('li', { class: 'ok' }, 'No warnings')]),
  )
  $('dash-cps').textContent = json.commandsPerSecond == null ? '…' : json.commandsPerSecond.toFixed(0)
  const max = Math.max(1, ...json.topCommands.map((c) => c.perSecond))
  $('dash-commands').replaceChildren(
    ...json.topCommands.map((c) =>
      h(
        'li',
        {},
        h('span', {}, c.command),
        h('span', {}, h('div', { class: 'bar', style: `width:${(100 * c.perSecond) / max}%` })),
        h('span', {}, c.perSecond.toFixed(1)),
      ),
    ),
  )
  if (json.keys)
    $('dash-keys')
      .querySelector('tbody')
      .replaceChildren(
        ...Object.entries(json.keys.counts).map(([pkg, c]) =>
          h('tr', {}, h('td', {}, pkg), h('td', {}, String(c.withTtl)), h('td', {}, String(c.withoutTtl))),
        ),
      )
  if (!feedSeeded) {
    feedSeeded = true
    for (const e of json.events) addFeed(e.data)
  }
}

let feedSeeded = false
function addFeed(data) {
  const e = data.event ?? {}
  const { package: pkg, event: name, ...rest } = e
  const line = h(
    'li',
    {},
    h('span', { class: 'origin' }, `[${data.origin}] `),
    `${new Date(data.at).toLocaleTimeString()} ${pkg ?? ''}:${name ?? ''} `,
    h('span', { class: 'muted' }, JSON.stringify(rest).slice(0, 160)),
  )
  $('feed').prepend(line)
  while ($('feed').children.length > 60) $('feed').lastChild.remove()
}

// ----- live events -----

function connectEvents() {
  const source = new EventSource('/api/events')
  source.addEventListener(
    'hello',
    (e) => ($('instance').textContent = `instance ${JSON.parse(e.data).instance}`),
  )
  source.addEventListener('board', (e) => scheduleBoards(JSON.parse(e.data).user))
  // Pub/sub is at-most-once: what was published while this instance's subscriber (or this page's
  // stream) was away is gone, so both reconnects redraw everything from Redis.
  source.addEventListener('resync', () => refreshAll())
  let opened = false
  source.addEventListener('open', () => {
    if (opened) refreshAll()
    opened = true
  })
  source.addEventListener('chat', (e) => {
    $('chat').append(chatLine(JSON.parse(e.data)))
    $('chat').scrollTop = $('chat').scrollHeight
  })
  source.addEventListener('profile', (e) => {
    if (JSON.parse(e.data).user === state.profileOf) showProfile(state.profileOf).catch(() => {})
  })
  source.addEventListener('rp', (e) => addFeed(JSON.parse(e.data)))
}

function refreshAll() {
  if (!state.user) return
  scheduleBoards(null, 0)
  Promise.allSettled([loadDevices(), loadChat(), showProfile(state.profileOf ?? state.user)])
}

$('tz').textContent = timeZone
connectEvents()
pollStatus()
loadMe().then(() => {
  if (!state.user) signedOut(null)
})
loadDashboard()
setInterval(pollStatus, 1000)
setInterval(() => state.user && loadMe(), 2000)
setInterval(() => state.user && loadDevices().catch(() => {}), 5000)
setInterval(loadDashboard, 2000)
