import { describeEachTarget, eventually, uniquePrefix } from '@rp/testing/vitest'
import { GraphQLObjectType, GraphQLSchema, GraphQLString, parse, subscribe } from 'graphql'
import { expect, it } from 'vitest'
import { RedisPubSubEngine } from './graphql.js'
import { PubSub } from './index.js'

describeEachTarget('RedisPubSubEngine with graphql subscribe()', (target) => {
  it('delivers published payloads through a GraphQL subscription, and return() unsubscribes', async () => {
    const prefix = uniquePrefix('gql')
    const bus = new PubSub({ redis: target.client(), prefix })
    const engine = new RedisPubSubEngine({ pubsub: bus, bufferSize: 100 })
    const schema = new GraphQLSchema({
      query: new GraphQLObjectType({
        name: 'Query',
        fields: { ok: { type: GraphQLString, resolve: () => 'ok' } },
      }),
      subscription: new GraphQLObjectType({
        name: 'Subscription',
        fields: {
          greeting: {
            type: GraphQLString,
            subscribe: () => engine.asyncIterableIterator(['GREETING', 'SALUTE']),
            resolve: (payload: { text: string }) => payload.text,
          },
        },
      }),
    })
    const result = await subscribe({ schema, document: parse('subscription { greeting }') })
    if (!(Symbol.asyncIterator in result)) throw new Error(`not a subscription: ${JSON.stringify(result)}`)
    const first = result.next()
    await bus.ready()
    await engine.publish('GREETING', { text: 'hello' })
    expect((await first).value).toEqual({ data: { greeting: 'hello' } })
    await engine.publish('SALUTE', { text: 'o7' })
    expect((await result.next()).value).toEqual({ data: { greeting: 'o7' } })
    await result.return?.()
    const client = target.client()
    const nodes = 'nodes' in client ? client.nodes('master') : [client]
    await eventually(
      async () => {
        const channels = await Promise.all(
          nodes.map((n) => n.call('PUBSUB', 'CHANNELS', `${prefix}:*`) as Promise<string[]>),
        )
        return channels.flat().length === 0
      },
      5_000,
      'both triggers unsubscribed',
    )
    await bus.close()
  })
  it('lets go of every trigger that subscribed when another one fails, and refuses triggers that are no channel names', async () => {
    const prefix = uniquePrefix('gql')
    const client = target.client()
    const bus = new PubSub({ redis: client, prefix })
    const engine = new RedisPubSubEngine({ pubsub: bus })
    const iterator = engine.asyncIterableIterator(['GOOD', 'ba*d'])
    await expect(iterator.next()).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    // Subscribers of GOOD's Redis channel, on every node.
    const channel = `${prefix}:{GOOD}`
    const nodes = 'nodes' in client ? client.nodes('master') : [client]
    const subscribers = async () => {
      let total = 0
      for (const node of nodes) total += Number(((await node.pubsub('NUMSUB', channel)) as unknown[])[1])
      return total
    }
    await eventually(async () => (await subscribers()) === 0)
    for (const bad of [5, {}, null])
      expect(() => engine.asyncIterableIterator(bad as never)).toThrow(/^triggers:/)
    await bus.close()
  })
})
