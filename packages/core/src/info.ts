/** Parses an INFO reply into `field -> value`, ignoring section headers. */
export function parseInfo(raw: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of raw.split(/\r?\n/)) {
    if (!line || line.startsWith('#')) continue
    const at = line.indexOf(':')
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1)
  }
  return out
}
