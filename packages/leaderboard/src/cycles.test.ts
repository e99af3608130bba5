import { expect, it } from 'vitest'
import { cycleOf, isoWeek } from './cycles.js'

const at = (iso: string) => Date.parse(iso)
const h = 3_600_000

it('weekly cycles are ISO 8601 weeks, Monday to Monday, and 2026 has a week 53', () => {
  expect(isoWeek(2026, 12, 31)).toEqual({ year: 2026, week: 53 })
  expect(isoWeek(2027, 1, 3)).toEqual({ year: 2026, week: 53 })
  expect(isoWeek(2027, 1, 4)).toEqual({ year: 2027, week: 1 })
  expect(isoWeek(2026, 1, 1)).toEqual({ year: 2026, week: 1 })
  expect(isoWeek(2021, 1, 3)).toEqual({ year: 2020, week: 53 })
  const w53 = cycleOf('weekly', 'UTC', at('2027-01-02T12:00:00Z'))
  expect(w53).toEqual({ key: '2026-W53', start: at('2026-12-28T00:00:00Z'), end: at('2027-01-04T00:00:00Z') })
})

it('follows Europe/Berlin across the 2026 DST changes: a 23-hour and a 25-hour day', () => {
  const spring = cycleOf('daily', 'Europe/Berlin', at('2026-03-29T12:00:00Z'))
  expect(spring).toEqual({
    key: '2026-03-29',
    start: at('2026-03-28T23:00:00Z'),
    end: at('2026-03-29T22:00:00Z'),
  })
  expect(spring.end - spring.start).toBe(23 * h)
  const autumn = cycleOf('daily', 'Europe/Berlin', at('2026-10-25T12:00:00Z'))
  expect(autumn).toEqual({
    key: '2026-10-25',
    start: at('2026-10-24T22:00:00Z'),
    end: at('2026-10-25T23:00:00Z'),
  })
  expect(autumn.end - autumn.start).toBe(25 * h)
  // The week containing the spring change starts at Monday midnight CET and ends at Monday midnight CEST.
  const week = cycleOf('weekly', 'Europe/Berlin', at('2026-03-29T12:00:00Z'))
  expect(week).toEqual({
    key: '2026-W13',
    start: at('2026-03-22T23:00:00Z'),
    end: at('2026-03-29T22:00:00Z'),
  })
  // Hours either side of the skipped 02:00: 01:xx ends where 03:xx begins.
  expect(cycleOf('hourly', 'Europe/Berlin', at('2026-03-29T00:30:00Z'))).toMatchObject({
    key: '2026-03-29T01',
    end: at('2026-03-29T01:00:00Z'),
  })
  expect(cycleOf('hourly', 'Europe/Berlin', at('2026-03-29T01:30:00Z'))).toMatchObject({
    key: '2026-03-29T03',
    start: at('2026-03-29T01:00:00Z'),
  })
})

it('follows America/New_York across the 2026 DST changes', () => {
  const spring = cycleOf('daily', 'America/New_York', at('2026-03-08T15:00:00Z'))
  expect(spring).toEqual({
    key: '2026-03-08',
    start: at('2026-03-08T05:00:00Z'),
    end: at('2026-03-09T04:00:00Z'),
  })
  const autumn = cycleOf('daily', 'America/New_York', at('2026-11-01T15:00:00Z'))
  expect(autumn).toEqual({
    key: '2026-11-01',
    start: at('2026-11-01T04:00:00Z'),
    end: at('2026-11-02T05:00:00Z'),
  })
  // 23:30 local on Oct 31 is still October in New York, November in UTC.
  expect(cycleOf('monthly', 'America/New_York', at('2026-11-01T03:30:00Z')).key).toBe('2026-10')
  expect(cycleOf('monthly', 'UTC', at('2026-11-01T03:30:00Z')).key).toBe('2026-11')
})

it('month ends, leap days, years and minutes', () => {
  expect(cycleOf('monthly', 'UTC', at('2028-02-29T23:59:59.999Z'))).toEqual({
    key: '2028-02',
    start: at('2028-02-01T00:00:00Z'),
    end: at('2028-03-01T00:00:00Z'),
  })
  expect(cycleOf('monthly', 'Europe/Berlin', at('2026-01-31T23:30:00Z')).key).toBe('2026-02')
  expect(cycleOf('yearly', 'Asia/Tokyo', at('2026-12-31T15:00:00Z')).key).toBe('2027')
  expect(cycleOf('minute', 'Asia/Kathmandu', at('2026-06-01T00:00:30Z'))).toEqual({
    key: '2026-06-01T05:45',
    start: at('2026-06-01T00:00:00Z'),
    end: at('2026-06-01T00:01:00Z'),
  })
})

it('refuses an unknown zone or cycle, and a custom cycle that does not contain its instant', () => {
  expect(() => cycleOf('daily', 'Mars/Olympus', 0)).toThrow(/^timeZone:/)
  expect(() => cycleOf('fortnightly' as never, 'UTC', 0)).toThrow(/^cycle:/)
  expect(() => cycleOf(() => ({ key: 'x', start: 10, end: 20 }), 'UTC', 5)).toThrow(/^cycle:/)
})

it('gives every instant a window that holds it, also where the clock goes back, one window per key', () => {
  // Autumn nights: 1 hour back (Berlin, New York, Santiago at midnight), 30 minutes (Lord Howe),
  // 2 hours (Troll). A repeated minute or hour is a cycle of its own, keyed with the offset.
  const nights: Array<[string, string]> = [
    ['Europe/Berlin', '2026-10-24T18:00:00Z'],
    ['America/New_York', '2026-10-31T22:00:00Z'],
    ['America/Santiago', '2026-04-04T18:00:00Z'],
    ['Australia/Lord_Howe', '2026-04-04T08:00:00Z'],
    ['Antarctica/Troll', '2026-10-24T18:00:00Z'],
  ]
  for (const [zone, from] of nights)
    for (const cycle of ['minute', 'hourly', 'daily'] as const) {
      const windows = new Map<string, string>()
      const t0 = Date.parse(from)
      for (let ms = t0; ms < t0 + 14 * 3_600_000; ms += 60_000) {
        const w = cycleOf(cycle, zone, ms + 30_000)
        expect(
          w.start <= ms + 30_000 && ms + 30_000 < w.end,
          `${zone} ${cycle} ${new Date(ms).toISOString()}`,
        ).toBe(true)
        const span = `${w.start}..${w.end}`
        expect(windows.get(w.key) ?? span, `${zone} ${cycle} ${w.key}`).toBe(span)
        windows.set(w.key, span)
      }
    }
  expect(cycleOf('minute', 'Europe/Berlin', Date.parse('2026-10-25T01:30:30Z'))).toEqual({
    key: '2026-10-25T02:30+01:00',
    start: Date.parse('2026-10-25T01:30:00Z'),
    end: Date.parse('2026-10-25T01:31:00Z'),
  })
})
