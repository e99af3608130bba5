import { InvalidArgumentError } from './errors.js'

/**
 * The one set of validators every package uses, so messages read the same everywhere and nothing
 * is silently coerced: a string where a number belongs, NaN or Infinity are refused, never fixed.
 */
export function requirePositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidArgumentError(name, `must be a positive integer, got ${describe(value)}`)
  }
  return value
}

export function requireNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(name, `must be an integer >= 0, got ${describe(value)}`)
  }
  return value
}

/** setTimeout's ceiling: a longer delay fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A duration that bounds a wait or a call: a positive integer of ms that a timer can hold. */
export function requireTimeoutMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw new InvalidArgumentError(
      name,
      `must be an integer of ms in [1, ${MAX_TIMER_MS}], got ${describe(value)}`,
    )
  }
  return value
}

/** An integer in [min, max]. */
export function requireIntegerInRange(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(name, `must be an integer in [${min}, ${max}], got ${describe(value)}`)
  }
  return value
}

export function requireNonEmptyString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(name, `must be a non-empty string, got ${describe(value)}`)
  }
  return value
}

export function requireOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new InvalidArgumentError(
      name,
      `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`,
    )
  }
  return value as T
}

export function requireBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw new InvalidArgumentError(name, `must be true or false, got ${describe(value)}`)
  return value
}

// biome-ignore lint/suspicious/noExplicitAny: any function shape is accepted; callers narrow it.
export function requireFunction<F extends (...args: any[]) => unknown>(name: string, value: unknown): F {
  if (typeof value !== 'function')
    throw new InvalidArgumentError(name, `must be a function, got ${describe(value)}`)
  return value as F
}

/** An options bag: undefined becomes {}, anything but a plain object is refused. */
export function requireOptions<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) return {} as T
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(name, `must be an object, got ${describe(value)}`)
  }
  return value
}

export function requireArray<T>(name: string, value: unknown): readonly T[] {
  if (!Array.isArray(value)) throw new InvalidArgumentError(name, `must be an array, got ${describe(value)}`)
  return value as readonly T[]
}

/** An array of non-empty strings, at most `max` long. */
export function requireStringArray(name: string, value: unknown, max = Number.POSITIVE_INFINITY): string[] {
  const list = requireArray<unknown>(name, value)
  if (list.length > max)
    throw new InvalidArgumentError(name, `must hold at most ${max} entries, got ${list.length}`)
  return list.map((item, i) => requireNonEmptyString(`${name}[${i}]`, item))
}

export function requireSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined
  if (!(value instanceof AbortSignal))
    throw new InvalidArgumentError(name, `must be an AbortSignal, got ${describe(value)}`)
  return value
}

/**
 * Runs a promise-returning entry point so that a validation error thrown before its first await
 * rejects the promise instead of throwing at the call site: a function that returns a Promise
 * never throws.
 */
export function promised<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn()
  } catch (error) {
    return Promise.reject(error)
  }
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  if (typeof value === 'bigint') return `${value}n`
  if (Array.isArray(value)) return 'an array'
  return typeof value
}

/**
 * Refuses any own property of `options` that is not in `allowed`: a misspelt option (`idleTtl`
 * for `idleTtlMs`) would otherwise be ignored and its default silently used.
 */
export function requireKnownOptions(name: string, options: object, allowed: readonly string[]): void {
  for (const key in options) {
    if (Object.hasOwn(options, key) && !allowed.includes(key))
      throw new InvalidArgumentError(
        name === 'options' ? key : `${name}.${key}`,
        `is not a known option; the known ones are ${allowed.join(', ')}`,
      )
  }
}

/**
 * A value JSON round-trips without loss: null, booleans, finite numbers, strings, arrays and plain
 * objects of those (objects with toJSON, such as Date, count as what toJSON returns). JSON would
 * silently drop functions and undefined, turn NaN into null and throw on BigInt or a cycle; this
 * names the path instead.
 */
export function requireJsonValue(name: string, value: unknown): void {
  const seen = new Set<object>()
  const visit = (path: string, v: unknown, inArray: boolean): void => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean') return
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new InvalidArgumentError(path, `JSON cannot encode ${v}`)
      return
    }
    if (v === undefined && !inArray) return
    if (typeof v !== 'object')
      throw new InvalidArgumentError(path, `JSON cannot encode ${v === undefined ? 'undefined' : typeof v}`)
    if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
      visit(path, (v as { toJSON: () => unknown }).toJSON(), inArray)
      return
    }
    if (seen.has(v)) throw new InvalidArgumentError(path, 'is circular: JSON cannot encode it')
    seen.add(v)
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) visit(`${path}[${i}]`, v[i], true)
    } else {
      const proto = Object.getPrototypeOf(v)
      if (proto !== Object.prototype && proto !== null)
        throw new InvalidArgumentError(
          path,
          `must be a plain object, got ${proto?.constructor?.name ?? 'an object'}`,
        )
      for (const key in v)
        if (Object.hasOwn(v, key)) visit(`${path}.${key}`, (v as Record<string, unknown>)[key], false)
    }
    seen.delete(v)
  }
  visit(name, value, false)
}
