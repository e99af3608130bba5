import { InvalidArgumentError } from '@rp/core'

/** What a request body may carry; every field is checked before anything touches Redis. */
type Body = Record<string, unknown>

export function body(raw: unknown): Body {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new InvalidArgumentError('body', 'must be a JSON object')
  return raw as Body
}

const NAME = /^[\p{L}\p{N}][\p{L}\p{N} _.-]{0,19}$/u

/** A player name: 1–20 letters, digits, spaces, dots, dashes or underscores. */
export function playerName(value: unknown, field = 'name'): string {
  // NFKC folds look-alikes such as fullwidth letters into the plain ones, so 'Ａna' is 'Ana'.
  const name = typeof value === 'string' ? value.normalize('NFKC').trim() : value
  if (typeof name !== 'string' || !NAME.test(name))
    throw new InvalidArgumentError(field, 'must be 1–20 letters, digits, spaces, dots, dashes or underscores')
  return name
}

/** An IANA time zone the runtime knows; anything else would make a board nobody can read. */
export function timeZone(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 64)
    throw new InvalidArgumentError('timeZone', 'must be an IANA time zone such as Europe/Berlin')
  try {
    return new Intl.DateTimeFormat('en', { timeZone: value }).resolvedOptions().timeZone
  } catch {
    throw new InvalidArgumentError(
      'timeZone',
      `is not a time zone this server knows: ${JSON.stringify(value)}`,
    )
  }
}

export function text(value: unknown, field: string, max: number): string {
  const s = typeof value === 'string' ? value.trim() : value
  if (typeof s !== 'string' || s.length === 0 || s.length > max)
    throw new InvalidArgumentError(field, `must be 1–${max} characters`)
  return s
}

export function color(value: unknown): string {
  if (typeof value !== 'string' || !/^#[0-9a-f]{6}$/i.test(value))
    throw new InvalidArgumentError('color', 'must be a #rrggbb colour')
  return value.toLowerCase()
}

/** A round id, as the server handed it out. */
export function roundId(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{21}$/.test(value))
    throw new InvalidArgumentError('roundId', 'must be the id /api/rounds/start returned')
  return value
}

/** Points for a round, from the server's measure: under 100 ms is a guess, not a reaction. */
export function pointsFor(reaction: number | null): number {
  if (reaction === null || reaction < 100) return 0
  return Math.max(0, 1_000 - reaction)
}
