import { z } from 'zod'
import { OPERATION_DEFAULT_TIMEOUT_S, OPERATION_MAX_TIMEOUT_S } from '../constants.js'
import type { ControlMethods } from '../control/api.js'
import { noParamsFor, paramsOf } from '../control/params.js'
import { controlMethod } from '../control/server.js'
import { streamUntilClosed, untilAborted } from '../control/streaming.js'
import { parseRouteSend, parseSend, type InboxMessage } from './message.js'
import { lookupView, messageView, type Messaging } from './messaging.js'

const messageId = z.string({ message: 'expected a message id (a string)' }).min(1, 'expected a message id, not empty')

export const messagesGetParams = z.object({ id: messageId }).strict()

export const messagesWaitParams = z.object({
  id: messageId,
  timeout: z.number({ message: `expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}` })
    .positive(`expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}`)
    .max(OPERATION_MAX_TIMEOUT_S, `expected seconds, more than 0 and at most ${OPERATION_MAX_TIMEOUT_S}`)
    .default(OPERATION_DEFAULT_TIMEOUT_S),
  /** Wait for the handlers: every target processed, or one failed. */
  processed: z.boolean({ message: 'expected true or false' }).default(false)
}).strict()

// null was accepted for "no since" before the params had a schema.
const since = z.string({ message: 'expected a message id or an ISO time (a string)' }).nullish().transform(v => v ?? undefined)

export const inboxListParams = z.object({
  since,
  limit: z.number({ message: 'expected a whole number from 1 to 100000' }).int('expected a whole number from 1 to 100000')
    .min(1, 'expected a whole number from 1 to 100000').max(100000, 'expected a whole number from 1 to 100000').default(1000)
}).strict()

export const inboxFollowParams = z.object({ since }).strict()

/** Control methods of coordination messages: send, inspect, wait, watch, and the inbox. */
export function messagingControl (messaging: Messaging): ControlMethods {
  return {
    // The answer leaves out the body the caller just sent.
    'messages.send': controlMethod(parseSend, async params => { const { body: _body, ...view } = messageView(await messaging.send(params)); return view }),
    // To the best agent with a capability; `outcome: no_candidate` says what was searched.
    'messages.route': controlMethod(parseRouteSend, async params => {
      const sent = await messaging.sendToCapability(params)
      if ('outcome' in sent) return sent
      const { body: _body, ...view } = messageView(sent)
      return view
    }),
    'messages.get': controlMethod(paramsOf(messagesGetParams, 'messages.get'), async params => lookupView(await messaging.lookup(params.id))),
    // Events for each target as it finishes; the result once all have (or at the timeout).
    'messages.wait': controlMethod(paramsOf(messagesWaitParams, 'messages.wait'), async (params, ctx) =>
      messageView(await messaging.wait(params.id, params.timeout * 1000, event => { ctx.notify(event) }, ctx.signal, params.processed))),
    'messages.watch': controlMethod(noParamsFor('messages.watch'), async (_params, ctx) => await streamUntilClosed(ctx, notify => messaging.watchDeliveries(notify))),
    'inbox.list': controlMethod(paramsOf(inboxListParams, 'inbox.list'), async params => await messaging.inboxList(params)),
    // What is in the inbox after `since`, then every new message, until the caller disconnects or half-closes.
    'inbox.follow': controlMethod(paramsOf(inboxFollowParams, 'inbox.follow'), async (params, ctx) => {
      const buffered: InboxMessage[] = []
      let live = false
      const unfollow = messaging.followInbox(message => { if (live) ctx.notify(message); else buffered.push(message) })
      try {
        // Replayed a page at a time; positions increase, so what arrived meanwhile and was replayed is skipped.
        let shownUpTo = -1
        for await (const page of messaging.inboxReplay(params.since)) {
          if (ctx.signal.aborted) break
          for (const message of page) ctx.notify(message)
          shownUpTo = page[page.length - 1]!.position
        }
        for (const message of buffered) if (message.position > shownUpTo) ctx.notify(message)
        live = true
        await untilAborted(ctx.inputEnded)
      } finally {
        unfollow()
      }
      return { following: false }
    })
  }
}
