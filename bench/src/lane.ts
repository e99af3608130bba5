/**
 * One contender in a process of its own (compare.ts): the contender's library, its client and its
 * garbage share a heap and an event loop with nothing else, so no library's JIT state, GC pauses or
 * timers move another's figures. The parent sends `setup`, then `run` per round, then `close`;
 * the server's figures are taken by the parent around each run.
 */
import { Redis } from 'ioredis'
import type { Contender, Context } from './compare.js'
import { type LaneReply, type LaneRequest, type LaneSetup, listContenders } from './compare.js'
import { countCommands, timedLoop } from './measure.js'

let op: ((i: number) => Promise<unknown>) | undefined
let counter: () => number = () => 0
let close: (() => Promise<void>) | undefined

function reply(message: LaneReply): void {
  process.send!(message)
}

async function setup(message: LaneSetup): Promise<void> {
  const contenders: Contender[] = await listContenders(message.suite)
  const contender = contenders.find((c) => c.name === message.name)
  if (!contender) throw new Error(`no contender named ${message.name} in ${message.suite.list}`)
  const client = new Redis(message.url, message.clientOptions)
  counter = countCommands(client)
  const admin = new Redis(message.url)
  const ctx: Context = { ...message.ctx, url: message.url, admin }
  const built = await contender.setup(client, message.prefix, ctx)
  op = built.op
  close = async () => {
    await built.close?.()
    client.disconnect()
    admin.disconnect()
  }
}

process.on('message', (message: LaneRequest) => {
  const work = async (): Promise<LaneReply> => {
    switch (message.type) {
      case 'setup':
        await setup(message)
        return { type: 'ready' }
      case 'run':
        return {
          type: 'done',
          run: await timedLoop(op!, message.ops, message.concurrency, counter, message.offset),
        }
      case 'close':
        await close?.()
        return { type: 'closed' }
    }
  }
  work().then(
    (answer) => {
      reply(answer)
      if (answer.type === 'closed') process.disconnect()
    },
    (error: unknown) => reply({ type: 'error', message: String((error as Error)?.stack ?? error) }),
  )
})
