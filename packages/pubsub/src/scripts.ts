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

/**
 * Moves an entry that failed maxDeliveries times to the dead-letter stream, atomically with its
 * XACK, so it is neither lost nor delivered again to this group. The entry stays in the stream:
 * other groups read it on their own terms.
 * KEYS[1] stream, KEYS[2] dead-letter stream. ARGV[1] group, ARGV[2] id, ARGV[3] deliveries,
 * ARGV[4] dead-letter cap (MAXLEN ~), ARGV[5] consumer. Reply: 1 if moved, 0 if the entry was
 * already gone (trimmed, or acknowledged by another consumer meanwhile).
 */
export const deadLetterScript = defineScript<number>({
  name: 'pubsub.deadLetter',
  keys: 2,
  lua: `
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #entry == 0 or acked == 0 then return 0 end
local fields = entry[1][2]
local message = nil
for i = 1, #fields, 2 do
  if fields[i] == 'm' then message = fields[i + 1] end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'm', message or '', 'id', ARGV[2],
  'group', ARGV[1], 'deliveries', ARGV[3], 'consumer', ARGV[5])
return 1
`,
})

/**
 * Puts a dead letter back on the stream (a new id) for the group it failed in only (field `g`:
 * other groups acknowledge it unread), and removes it from the dead-letter stream.
 * KEYS[1] stream, KEYS[2] dead-letter stream. ARGV[1] dead-letter id, ARGV[2] stream cap.
 * Reply: the new id, or nil when there is no such dead letter.
 */
export const retryScript = defineScript<string | null>({
  name: 'pubsub.retry',
  keys: 2,
  lua: `
local entry = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
if #entry == 0 then return false end
local fields = entry[1][2]
local message, group = '', ''
for i = 1, #fields, 2 do
  if fields[i] == 'm' then message = fields[i + 1] end
  if fields[i] == 'group' then group = fields[i + 1] end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', message, 'g', group)
redis.call('XDEL', KEYS[2], ARGV[1])
return id
`,
})
