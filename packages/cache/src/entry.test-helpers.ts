/**
 * An entry as the write script stores it (see scripts.ts), for tests that play another client
 * writing behind the cache's back: fresh for a minute by this machine's clock, untagged, JSON.
 */
export function storedEntry(data: string, freshUntil = Date.now() + 60_000): string {
  return `R1${String(freshUntil).padStart(13, '0')}N0,1,0,0,${data}`
}
