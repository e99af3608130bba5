import { describe, InvalidArgumentError } from '@rp/core/kit'

/** One cycle of a periodic board: its key and the instants it covers, [start, end), epoch ms. */
export interface CycleWindow {
  readonly key: string
  readonly start: number
  readonly end: number
}

/** A custom cycle: the window that contains `at` (its end must be after `at`). */
export type CustomCycle = (at: Date) => CycleWindow

export type CycleName = 'minute' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly'
export type Cycle = CycleName | CustomCycle

export const CYCLE_NAMES: readonly CycleName[] = ['minute', 'hourly', 'daily', 'weekly', 'monthly', 'yearly']

const formatters = new Map<string, Intl.DateTimeFormat>()

/** An Intl formatter for the zone, or InvalidArgumentError for a zone Intl does not know. */
export function zoneFormatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone)
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      })
    } catch {
      throw new InvalidArgumentError(
        'timeZone',
        `must be UTC or an IANA time zone, got ${describe(timeZone)}`,
      )
    }
    formatters.set(timeZone, f)
  }
  return f
}

/** The wall-clock time the zone shows at instant `ms`, as if it were UTC (ms resolution kept). */
function wallOf(ms: number, timeZone: string): number {
  const p: Record<string, number> = {}
  for (const part of zoneFormatter(timeZone).formatToParts(ms))
    if (part.type !== 'literal') p[part.type] = Number(part.value)
  return (
    Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) + (((ms % 1000) + 1000) % 1000)
  )
}

/**
 * The instant the zone's clock first shows `wall` (wall-clock ms, as if UTC). Computed with Intl
 * for that date, so it is right on both sides of a DST change; a wall time the change skips
 * (02:30 on a spring-forward night) maps to the first instant after the gap.
 */
function instantOf(wall: number, timeZone: string): number {
  // The zone's offsets a day either side cover any transition near `wall`, whatever its size
  // (30 minutes on Lord Howe, 2 hours at Troll): each gives a candidate instant.
  const offset = (t: number) => wallOf(t, timeZone) - t
  const candidates = [wall - offset(wall - 86_400_000), wall - offset(wall + 86_400_000), wall - offset(wall)]
  const exact = candidates.filter((t) => wallOf(t, timeZone) === wall)
  // In an overlap (autumn), the earlier of the instants showing this wall time.
  if (exact.length) return Math.min(...exact)
  // In a gap (spring), the first instant whose wall clock is at or past `wall`: the jump itself.
  let lo = Math.min(...candidates)
  let hi = Math.max(...candidates)
  while (wallOf(lo, timeZone) >= wall) lo -= 3_600_000
  while (wallOf(hi, timeZone) < wall) hi += 3_600_000
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (wallOf(mid, timeZone) >= wall) hi = mid
    else lo = mid
  }
  return hi
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/** ISO 8601 week-numbering year and week (weeks start on Monday) of a wall date. */
export function isoWeek(year: number, month: number, day: number): { year: number; week: number } {
  const date = Date.UTC(year, month - 1, day)
  const weekday = new Date(date).getUTCDay() || 7
  const thursday = new Date(date + (4 - weekday) * 86_400_000)
  const isoYear = thursday.getUTCFullYear()
  const ordinal = (thursday.getTime() - Date.UTC(isoYear, 0, 1)) / 86_400_000 + 1
  return { year: isoYear, week: Math.floor((ordinal - 1) / 7) + 1 }
}

/** The cycle containing instant `ms` in `timeZone`. */
export function cycleOf(cycle: Cycle, timeZone: string, ms: number): CycleWindow {
  if (typeof cycle === 'function') {
    const w = cycle(new Date(ms))
    if (
      !w ||
      typeof w.key !== 'string' ||
      !Number.isSafeInteger(w.start) ||
      !Number.isSafeInteger(w.end) ||
      !w.key ||
      !Number.isFinite(w.start) ||
      !Number.isFinite(w.end) ||
      !(w.start <= ms && ms < w.end)
    )
      throw new InvalidArgumentError(
        'cycle',
        'a custom cycle must return { key, start, end } with start <= at < end',
      )
    return w
  }
  const wall = new Date(wallOf(ms, timeZone))
  const y = wall.getUTCFullYear()
  const mo = wall.getUTCMonth()
  const d = wall.getUTCDate()
  const h = wall.getUTCHours()
  const mi = wall.getUTCMinutes()
  let start: number
  let end: number
  let key: string
  switch (cycle) {
    case 'minute':
      start = Date.UTC(y, mo, d, h, mi)
      end = Date.UTC(y, mo, d, h, mi + 1)
      key = `${y}-${pad(mo + 1)}-${pad(d)}T${pad(h)}:${pad(mi)}`
      break
    case 'hourly':
      start = Date.UTC(y, mo, d, h)
      end = Date.UTC(y, mo, d, h + 1)
      key = `${y}-${pad(mo + 1)}-${pad(d)}T${pad(h)}`
      break
    case 'daily':
      start = Date.UTC(y, mo, d)
      end = Date.UTC(y, mo, d + 1)
      key = `${y}-${pad(mo + 1)}-${pad(d)}`
      break
    case 'weekly': {
      const weekday = wall.getUTCDay() || 7
      start = Date.UTC(y, mo, d - (weekday - 1))
      end = start + 7 * 86_400_000
      const w = isoWeek(y, mo + 1, d)
      key = `${w.year}-W${pad(w.week)}`
      break
    }
    case 'monthly':
      start = Date.UTC(y, mo, 1)
      end = Date.UTC(y, mo + 1, 1)
      key = `${y}-${pad(mo + 1)}`
      break
    case 'yearly':
      start = Date.UTC(y, 0, 1)
      end = Date.UTC(y + 1, 0, 1)
      key = String(y)
      break
    default:
      throw new InvalidArgumentError('cycle', `must be one of ${CYCLE_NAMES.join(', ')} or a function`)
  }
  const window = { key, start: instantOf(start, timeZone), end: instantOf(end, timeZone) }
  if (ms < window.end) return window
  // The clock went back (autumn) and shows this cycle's wall times a second time: the repeat is a
  // cycle of its own, at the zone's offset now, keyed with that offset so it is no other cycle.
  // (A cycle longer than the repeat, such as a day, holds both passes and never gets here.)
  const offset = wallOf(ms, timeZone) - ms
  const sign = offset < 0 ? '-' : '+'
  const minutes = Math.abs(offset) / 60_000
  return {
    key: `${key}${sign}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`,
    start: start - offset,
    end: end - offset,
  }
}
