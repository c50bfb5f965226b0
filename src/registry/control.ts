import type { ControlMethods } from '../control/api.js'
import { noParamsFor, paramsOf } from '../control/params.js'
import { controlMethod } from '../control/server.js'
import { streamUntilClosed } from '../control/streaming.js'
import { heartbeatInput, listInput, registerInput, removeInput } from './agent.js'
import type { AgentRegistry } from './registry.js'

/** Control methods of the agent registry; each takes the registry's own input schema. */
export function registryControl (registry: AgentRegistry): ControlMethods {
  return {
    'agents.register': controlMethod(paramsOf(registerInput, 'agents register'), async params => await registry.register(params)),
    'agents.heartbeat': controlMethod(paramsOf(heartbeatInput, 'agents heartbeat'), async params => await registry.heartbeat(params)),
    'agents.remove': controlMethod(paramsOf(removeInput, 'agents remove'), async params => await registry.remove(params)),
    'agents.list': controlMethod(paramsOf(listInput, 'agents list'), async params => registry.list(params)),
    // Streams every change as an event until the caller disconnects or half-closes.
    'agents.watch': controlMethod(noParamsFor('agents.watch'), async (_params, ctx) => await streamUntilClosed(ctx, notify => registry.watch(entry => {
      notify({ agent_id: entry.agentId, removed: entry.record == null, record: entry.record != null ? registry.get(entry.agentId) ?? null : null })
    })))
  }
}
