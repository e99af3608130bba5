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
})
