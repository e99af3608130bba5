export { freePort } from './free-port.js'
export { type RedisServer, redisServerBinary, startBinaryServer, waitForPing } from './redis-server.js'
export { type RedisClusterHandle, startCluster } from './start-cluster.js'
export { type StartRedisOptions, startRedis } from './start-redis.js'
