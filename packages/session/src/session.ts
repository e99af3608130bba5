/** A JSON object of device details kept beside a session (ip, user agent, …), shown by listForUser. */
export type SessionMeta = Record<string, unknown>

export interface Session<Data extends object = Record<string, unknown>> {
  /** The id to put in the cookie. Redis never sees it: keys hold its SHA-256. */
  readonly id: string
  /** null for an anonymous session (one a framework adapter created). */
  readonly userId: string | null
  readonly data: Data
  readonly meta: SessionMeta
  /** Epoch ms, server clock, like every time here. */
  readonly createdAt: number
  readonly lastSeenAt: number
  /** When the session expires unless it is used again: min(lastSeenAt + idle TTL, absoluteExpiresAt). */
  readonly expiresAt: number
  /** When the session ends however active it is. */
  readonly absoluteExpiresAt: number
  /** Starts at 1 and grows by one with every write: pass it as `expectedVersion` to compare-and-set. */
  readonly version: number
}

/** One of a user's sessions, as listForUser shows it ("your devices"). */
export interface SessionDevice {
  /** The SHA-256 of the id (base64url): names the session without being usable as a cookie. */
  readonly handle: string
  /** The first 8 characters of the handle, to show. */
  readonly idHint: string
  readonly createdAt: number
  readonly lastSeenAt: number
  readonly expiresAt: number
  readonly absoluteExpiresAt: number
  readonly meta: SessionMeta
}
