import { defineScript } from '@rp/core/kit'

/**
 * A sequenced publish: the channel's next sequence number, the message stamped with it, kept in
 * the replay stream when asked, and published, in one script.
 * KEYS[1] the sequence counter, KEYS[2] the replay stream (same tag as the channel).
 * ARGV[1] channel, ARGV[2] envelope head ('j' or 'b'), ARGV[3] payload, ARGV[4] replay length
 * (0 = none), ARGV[5] TTL of both keys (ms), ARGV[6] '1' for SPUBLISH (sharded).
 * Reply: {receivers, seq}.
 */
export const publishScript = defineScript<[number, number]>({
  name: 'pubsub.publish',
  keys: 2,
  lua: `
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local message = ARGV[2] .. seq .. ':' .. ARGV[3]
if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 's', seq, 'm', message)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
local receivers
if ARGV[6] == '1' then receivers = redis.call('SPUBLISH', ARGV[1], message)
else receivers = redis.call('PUBLISH', ARGV[1], message) end
return {receivers, seq}
`,
})

/**
 * An unsequenced publish on a Cluster, run on the master of the channel's slot: every publish of
 * a channel then leaves from one node, so subscribers get them in publish order (PUBLISH sent to
 * whichever node ioredis picks reaches subscribers by different cluster-bus paths, out of order).
 * KEYS[1] any key with the channel's tag (only routes the call). ARGV[1] channel, ARGV[2] message,
 * ARGV[3] '1' for SPUBLISH. Reply: receivers.
 */
export const routedPublishScript = defineScript<number>({
  name: 'pubsub.routedPublish',
  keys: 1,
  lua: `
if ARGV[3] == '1' then return redis.call('SPUBLISH', ARGV[1], ARGV[2]) end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
`,
})
