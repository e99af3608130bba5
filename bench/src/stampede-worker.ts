/** One process of the stampede workload: waits for "go", then fires RP_CALLERS getOrSet calls. */
import KeyvRedis from '@keyv/redis'
import { Cache } from '@rp/cache'
import { BentoCache, bentostore } from 'bentocache'
import { redisDriver } from 'bentocache/drivers/redis'
import { createCache } from 'cache-manager'
import { Redis } from 'ioredis'
import { Keyv } from 'keyv'

const url = process.env.RP_URL!
const ns = process.env.RP_NS!
const callers = Number(process.env.RP_CALLERS)
const redis = new Redis(url)
const factory = async () => {
  await redis.incr(`${ns}:calls`)
  await new Promise((r) => setTimeout(r, 100))
  return { computed: true }
}

let getOrSet: () => Promise<unknown>
let close: () => Promise<unknown>
const lib = process.env.RP_LIB
if (lib === '@rp/cache') {
  const cache = new Cache({ redis, prefix: ns, ttlMs: 60_000 })
  getOrSet = () => cache.getOrSet('cold', factory)
  close = () => cache.close()
} else if (lib === 'bentocache') {
  const cache = new BentoCache({
    default: 'main',
    prefix: ns,
    stores: { main: bentostore().useL2Layer(redisDriver({ connection: redis })) },
  })
  getOrSet = () => cache.getOrSet({ key: 'cold', factory, ttl: 60_000 })
  close = () => cache.disconnectAll()
} else {
  const cache = createCache({ stores: [new Keyv({ store: new KeyvRedis(url), namespace: ns })] })
  getOrSet = () => cache.wrap('cold', factory, 60_000)
  close = () => cache.disconnect()
}

await redis.incr(`${ns}:ready`)
while ((await redis.get(`${ns}:go`)) === null) await new Promise((r) => setTimeout(r, 2))
const results = await Promise.all(Array.from({ length: callers }, () => getOrSet()))
process.stdout.write(String(results.filter((r) => (r as { computed?: boolean })?.computed === true).length))
await close()
redis.disconnect()
