export {
  type ConsumeOptions,
  type DeadLetter,
  type DeliveryMeta,
  DurableChannel,
  type DurableChannelOptions,
  type DurableChannelStats,
  type Worker,
} from './durable-channel.js'
export type { PubSubCodec } from './envelope.js'
export {
  type Handler,
  type IterateOptions,
  type MessageMeta,
  PubSub,
  type PubSubEventName,
  type PubSubOptions,
  type StandardSchema,
  type Subscription,
} from './pubsub.js'
export { BufferOverflowError, type OverflowPolicy } from './queue.js'
