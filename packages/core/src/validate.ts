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

/**
 * A duration of ms that may be 0 (a wait, a grace period, a throttle), bounded like a timeout: a
 * timer cannot hold more, and a key's TTL built from it must stay a TTL.
 */
export function requireDurationMs(name: string, value: unknown): number {
  return requireIntegerInRange(name, value, 0, MAX_TIMER_MS)
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

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * A non-empty string that is well-formed UTF-16: for a string Redis stores as a value or that is
 * hashed, where UTF-8 turns a lone surrogate into U+FFFD, so 'a\uD800' and 'a\uFFFD' would be one id.
 * (Strings that go into a key name are escaped instead: keys.ts.)
 */
export function requireWellFormedString(name: string, value: unknown): string {
  requireNonEmptyString(name, value)
  if (LONE_SURROGATE.test(value as string))
    throw new InvalidArgumentError(name, 'must be well-formed UTF-16 (it holds a lone surrogate)')
  return value as string
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

/** Built-ins whose contents are not own properties: passed as options, every option would be lost. */
const NOT_OPTIONS = [Map, Set, WeakMap, WeakSet, Date, RegExp, Promise, Error, ArrayBuffer] as const

/** An options bag: undefined becomes {}; a non-object, an array or a built-in such as a Map is refused. */
export function requireOptions<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) return {} as T
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidArgumentError(name, `must be an object, got ${describe(value)}`)
  }
  // A Map's or a Set's entries are not properties: every option would silently take its default.
  // (A class instance or an Object.create(defaults) object is read property by property, as before.)
  const builtIn = NOT_OPTIONS.find((type) => value instanceof type)
  if (builtIn || ArrayBuffer.isView(value))
    throw new InvalidArgumentError(
      name,
      `must be an object of options, got a ${builtIn?.name ?? value.constructor.name}`,
    )
  return value
}

/** A constructor's options, which it cannot do without: undefined is refused like null. */
export function requireGivenOptions<T extends object>(name: string, value: T | undefined): T {
  if (value === undefined) throw new InvalidArgumentError(name, 'must be an object, got undefined')
  return requireOptions(name, value)
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

/** The options of a call whose only option is `timeoutMs` (health, memory, shutdown). */
export function knownTimeoutOnly(options: { timeoutMs?: unknown } | undefined): { timeoutMs?: unknown } {
  const o = requireOptions('options', options)
  requireKnownOptions('options', o, ['timeoutMs'])
  return o
}

/**
 * JSON.stringify that refuses what JSON would lose instead of losing it: functions, symbols and
 * undefined inside arrays (dropped or turned into null), NaN and ±Infinity (null), BigInt and
 * cycles (a raw TypeError), and objects that are neither plain nor arrays (a Map becomes `{}`).
 * Objects with toJSON (Date) count as what toJSON returns; undefined object properties are
 * omitted, as JSON omits them. One pass: the check rides on the encoding. The error names the
 * path, e.g. `data.cart[2].price`.
 */
export function toJson(name: string, value: unknown): string {
  // The common case, checked without allocating, then encoded natively; the path-naming walk
  // below runs only to explain a refusal (or for data nested deeper than the quick check goes).
  if (lossless(value, 0)) return JSON.stringify(value)
  return explainJson(name, value)
}

/** True when JSON.stringify keeps `value` exactly; false when unsure (deep, toJSON) or it would not. */
function lossless(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true
    case 'number':
      return Number.isFinite(v)
    case 'object': {
      if (v === null) return true
      if (depth > 64) return false
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const item = v[i]
          if (item === undefined || !lossless(item, depth + 1)) return false
        }
        return true
      }
      const proto = Object.getPrototypeOf(v)
      // A valid Date is its ISO string, as the explaining walk counts it (frameworks' cookies).
      if (proto === Date.prototype) return Number.isFinite((v as Date).getTime())
      if (proto !== Object.prototype && proto !== null) return false
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false
      for (const key in v) {
        if (!Object.hasOwn(v, key)) continue
        const item = (v as Record<string, unknown>)[key]
        if (item !== undefined && !lossless(item, depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

function explainJson(name: string, value: unknown): string {
  const paths = new WeakMap<object, string>()
  let current = name
  const replacer = function (this: unknown, key: string, v: unknown): unknown {
    const parent = typeof this === 'object' && this !== null ? paths.get(this) : undefined
    const path = parent === undefined ? name : Array.isArray(this) ? `${parent}[${key}]` : `${parent}.${key}`
    current = path
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return v
      case 'number':
        if (!Number.isFinite(v)) throw new InvalidArgumentError(path, `JSON cannot encode ${v}`)
        return v
      case 'undefined':
        if (Array.isArray(this))
          throw new InvalidArgumentError(path, 'JSON cannot encode undefined in an array')
        return v
      case 'object': {
        if (v === null) return v
        if (!Array.isArray(v)) {
          const proto = Object.getPrototypeOf(v)
          if (proto !== Object.prototype && proto !== null)
            throw new InvalidArgumentError(
              path,
              `must be a plain object, got ${(proto as { constructor?: { name?: string } })?.constructor?.name ?? 'an object'}`,
            )
        }
        paths.set(v, path)
        return v
      }
      default:
        throw new InvalidArgumentError(path, `JSON cannot encode ${typeof v}`)
    }
  }
  try {
    const text = JSON.stringify(value, replacer)
    if (text === undefined) throw new InvalidArgumentError(name, 'JSON cannot encode undefined')
    return text
  } catch (error) {
    if (error instanceof InvalidArgumentError) throw error
    // JSON.stringify's own TypeError: a cycle (or a BigInt inside toJSON's result).
    throw new InvalidArgumentError(
      current,
      `is circular or holds a BigInt: JSON cannot encode it (${(error as Error).message.split('\n')[0]})`,
    )
  }
}

/** Refuses a value JSON would not round-trip without loss (see toJson). */
export function requireJsonValue(name: string, value: unknown): void {
  if (value !== undefined) toJson(name, value)
}
