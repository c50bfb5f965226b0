import { Writable } from 'node:stream'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { pbStream, streamPair } from '@libp2p/utils'
import { pino } from 'pino'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { OperationKind, OperationRequest, OperationResponse } from '../../protocols/operation.js'
import { OPERATION_STREAM_MAX_MESSAGE_BYTES } from '../../src/constants.js'
import { ProtocolError, TimeoutError } from '../../src/errors.js'
import { PeerTable } from '../../src/mesh/peer-table.js'
import type { ActionResult } from '../../src/operations/actions.js'
import type { Requester } from '../../src/operations/authority.js'
import type { OperationExecutor } from '../../src/operations/local-executor.js'
import {
  OPERATION_PROTOCOL, OperationProtocol, RemoteFailedError, RemoteRefusedError, RemoteTimedOutError, type OperationTimeouts
} from '../../src/operations/operation-protocol.js'
import type { NodeReport } from '../../src/operations/report.js'

type Handler = (stream: Stream, connection: Connection) => void | Promise<void>

/**
 * An in-memory network: each node's handler, and dials that open a stream pair and hand the
 * inbound end to the dialled node's handler as if from the dialling peer.
 */
class Network {
  readonly handlers = new Map<string, Handler>()
  /** Dialled streams behave as if the remote never read: nothing can be written to them. */
  remoteNeverReads = false

  libp2pOf (self: PeerId): Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'> {
    return {
      handle: async (_protocol: string | string[], handler: Handler) => { this.handlers.set(self.toString(), handler) },
      unhandle: async () => { this.handlers.delete(self.toString()) },
      dialProtocol: (async (peer: PeerId, protocol: string) => {
        const handler = this.handlers.get(peer.toString())
        if (handler == null) throw new Error(`no route to ${peer.toString()}`)
        const [outbound, inbound] = await streamPair({ protocol })
        void handler(inbound, { remotePeer: self } as unknown as Connection)
        if (this.remoteNeverReads) windowShut(outbound)
        return outbound
      }) as unknown as Libp2p['dialProtocol']
    }
  }

  /** `peer` answers with `serve` instead of a protocol service. */
  serve (peer: PeerId, serve: (stream: Stream) => Promise<void>): void {
    this.handlers.set(peer.toString(), stream => { void serve(stream).catch(() => {}) })
  }
}

/**
 * The stream's remote never reads: its flow-control window stays shut, so the transport takes
 * nothing more and never signals that it drained.
 */
function windowShut (stream: Stream): void {
  stream.send = () => false
}

function capture (): { lines: Array<Record<string, unknown>>, log: pino.Logger } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { lines, log: pino({ level: 'info' }, sink) }
}

function reportOf (node: string, role: 'genesis' | 'follower' = 'follower'): NodeReport {
  return {
    node,
    role,
    status: 'online',
    block_height: 42,
    mempool_size: 3,
    p2p_connections: 2,
    service_uptime: '1d 2h 3m',
    last_sync: null,
    issues: [],
    checks: [{ name: 'rpc', ok: true, detail: 'ok', state: 'ok' }],
    daemon_uptime_ms: 1000,
    probed_at_ms: Date.now(),
    chains: { 'ait-mainnet': { block_height: 42, mempool_size: 3, mempool_at_least: false } },
    store: null
  }
}

function executor (overrides: Partial<OperationExecutor> = {}): OperationExecutor & { requesters: Requester[] } {
  const requesters: Requester[] = []
  return {
    requesters,
    report: async () => reportOf('aitbc1'),
    action: async (action, _force, _timeoutMs, requester): Promise<ActionResult> => {
      requesters.push(requester)
      return { action, state: 'ok', exit_code: 0, duration_ms: 1, output_tail: 'done\n', reason: '', destructive: false, health_before: '', health_after: '' }
    },
    sync: async (_step, _payload, _force, _timeoutMs, requester) => { requesters.push(requester); return { state: 'ok' } },
    ...overrides
  }
}

/** Waits until `check` holds, polling; fails after `ms`. */
async function until (what: string, check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

const FAST: Partial<OperationTimeouts> = { requestReadMs: 150, writeMs: 150, dialMs: 500, answerGraceMs: 100, closeMs: 200 }

let genesisId: PeerId
let followerId: PeerId
let strangerId: PeerId

beforeAll(async () => {
  const newPeerId = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  genesisId = await newPeerId()
  followerId = await newPeerId()
  strangerId = await newPeerId()
})

describe('operation protocol over in-memory streams', () => {
  const running: OperationProtocol[] = []
  afterEach(async () => { await Promise.all(running.splice(0).map(async p => { await p.stop() })) })

  /** The genesis node aitbc (requester) and the follower aitbc1 (responder), each knowing the other. */
  async function pair (local = executor(), timeouts = FAST): Promise<{ net: Network, requester: OperationProtocol, responder: OperationProtocol, responderLog: Array<Record<string, unknown>> }> {
    const net = new Network()
    const peersOfGenesis = new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: followerId, addr: '/ip4/127.0.0.1/tcp/1' }], 10_000)
    const peersOfFollower = new PeerTable([{ name: 'aitbc', role: 'genesis', peerId: genesisId, addr: '/ip4/127.0.0.1/tcp/2' }], 10_000)
    const responderLog = capture()
    const requester = new OperationProtocol({ libp2p: net.libp2pOf(genesisId), peers: peersOfGenesis, local: executor(), log: capture().log, timeouts })
    const responder = new OperationProtocol({ libp2p: net.libp2pOf(followerId), peers: peersOfFollower, local, log: responderLog.log, timeouts })
    await requester.start()
    await responder.start()
    running.push(requester, responder)
    return { net, requester, responder, responderLog: responderLog.lines }
  }

  /** A raw responder for aitbc1 that reads the request and answers with `answer(request)`, if given. */
  function rawResponder (net: Network, answer?: (request: OperationRequest) => Partial<OperationResponse>): void {
    net.serve(followerId, async stream => {
      const pb = pbStream(stream, { maxDataLength: OPERATION_STREAM_MAX_MESSAGE_BYTES })
      const request = await pb.read(OperationRequest)
      if (answer != null) await pb.write({ requestId: request.requestId, error: '', payloadJson: '', ...answer(request) }, OperationResponse)
    })
  }

  it('answers a status request with the responder\'s own report, and runs a peer\'s action as the node of the connection', async () => {
    const local = executor()
    const { requester } = await pair(local)
    const report = await requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 1000)
    expect(report).toMatchObject({ node: 'aitbc1', status: 'online', block_height: 42, chains: { 'ait-mainnet': { block_height: 42 } } })
    const action = await requester.requestAction(followerId, 'aitbc1', 'hello', false, 'req-2', 1000)
    expect(action).toMatchObject({ action: 'hello', state: 'ok', exit_code: 0, output_tail: 'done\n' })
    expect(local.requesters).toEqual([{ node: 'aitbc', role: 'genesis', self: false, operationId: 'req-2' }])
  })

  it('refuses a report in another node\'s name (a node answering for another)', async () => {
    const { requester } = await pair(executor({ report: async () => reportOf('aitbc2') }))
    const asked = requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'health', 'req-1', 1000)
    await expect(asked).rejects.toThrow(ProtocolError)
    await expect(asked).rejects.toThrow('aitbc1: report names node "aitbc2", expected "aitbc1"')
  })

  it('refuses an answer to another request id', async () => {
    const { net, requester } = await pair()
    rawResponder(net, () => ({ requestId: 'someone-elses', report: undefined }))
    await expect(requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 1000))
      .rejects.toThrow('aitbc1 answered request someone-elses, expected req-1')
  })

  it('times out on a peer that reads the request and never answers, at the request\'s timeout', async () => {
    const { net, requester } = await pair()
    rawResponder(net)
    const started = Date.now()
    const asked = requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 300)
    await expect(asked).rejects.toThrow(TimeoutError)
    await expect(asked).rejects.toThrow('aitbc1 did not answer within 300 ms')
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('waits for an action\'s answer the action\'s timeout plus the grace for the answer to travel', async () => {
    const { net, requester } = await pair()
    rawResponder(net)
    await expect(requester.requestAction(followerId, 'aitbc1', 'slow', false, 'req-1', 200)).rejects.toThrow('aitbc1 did not answer within 300 ms')
  })

  it('times out on a peer that never finishes the answer\'s frame', async () => {
    const { net, requester } = await pair()
    net.serve(followerId, async stream => {
      await pbStream(stream).read(OperationRequest)
      // A length prefix of 100 bytes, then 3 of them.
      stream.send(Uint8Array.from([100, 1, 2, 3]))
    })
    await expect(requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 300)).rejects.toThrow('aitbc1 did not answer within 300 ms')
  })

  it('gives up writing a request to a peer that never reads, at the write timeout', async () => {
    const { net, requester } = await pair()
    net.remoteNeverReads = true
    net.serve(followerId, async () => {})
    const asked = requester.requestSync(followerId, 'aitbc1', 'config.write', { files: [] }, false, 'req-1', 5000)
    await expect(asked).rejects.toThrow(TimeoutError)
    await expect(asked).rejects.toThrow('aitbc1 did not take the request within 150 ms')
  })

  it('resets the stream of a requester that never finishes its request frame, and logs it once as unreadable', async () => {
    const served = await pair()
    const handler = served.net.handlers.get(followerId.toString())!
    const [outbound, inbound] = await streamPair({ protocol: OPERATION_PROTOCOL })
    // A length prefix of 50 bytes, then 2 of them.
    outbound.send(Uint8Array.from([50, 10, 3]))
    const started = Date.now()
    await handler(inbound, { remotePeer: genesisId } as unknown as Connection)
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(inbound.status).not.toBe('open')
    await until('the rejection line', () => served.responderLog.some(l => l.event === 'operation_request_failed'))
    expect(served.responderLog.filter(l => l.event === 'operation_request_failed')).toMatchObject([{ peer: 'aitbc', reason: 'request unreadable' }])
  })

  it('stops writing an answer to a requester that never reads it, and logs it as not taken', async () => {
    const served = await pair()
    const handler = served.net.handlers.get(followerId.toString())!
    const [outbound, inbound] = await streamPair({ protocol: OPERATION_PROTOCOL })
    windowShut(inbound)
    await pbStream(outbound).write({ requestId: 'req-1', kind: OperationKind.SYNC, timeoutMs: 5000, action: '', force: false, syncStep: 'config.read', payloadJson: '' }, OperationRequest)
    await handler(inbound, { remotePeer: genesisId } as unknown as Connection)
    expect(inbound.status).not.toBe('open')
    await until('the rejection line', () => served.responderLog.some(l => l.event === 'operation_request_failed'))
    expect(served.responderLog.find(l => l.event === 'operation_request_failed')).toMatchObject({ peer: 'aitbc', reason: 'answer not taken', operationId: 'req-1' })
  })

  it('resets the stream of a sync request whose payload is not JSON, and refuses a request without a kind with the reason', async () => {
    const served = await pair()
    const handler = served.net.handlers.get(followerId.toString())!
    const ask = async (request: Uint8Array): Promise<{ inbound: Stream, answer: Promise<OperationResponse> }> => {
      const [outbound, inbound] = await streamPair({ protocol: OPERATION_PROTOCOL })
      const pb = pbStream(outbound)
      outbound.send(Uint8Array.from([request.length, ...request]))
      const answer = pb.read(OperationResponse)
      answer.catch(() => {})
      await handler(inbound, { remotePeer: genesisId } as unknown as Connection)
      return { inbound, answer }
    }
    const notJson = await ask(OperationRequest.encode({ requestId: 'req-1', kind: OperationKind.SYNC, timeoutMs: 1000, action: '', force: false, syncStep: 'git.inspect', payloadJson: '{"files": [' }))
    expect(notJson.inbound.status).not.toBe('open')
    await expect(notJson.answer).rejects.toThrow()
    expect(served.responderLog.find(l => l.event === 'operation_request_failed')).toMatchObject({ reason: 'invalid payload', err: 'sync payload is not JSON' })
    // A request that names no kind.
    const unknown = await ask(OperationRequest.encode({ requestId: 'req-1', kind: OperationKind.OPERATION_KIND_UNSPECIFIED, timeoutMs: 1000, action: '', force: false, syncStep: '', payloadJson: '' }))
    await expect(unknown.answer).resolves.toMatchObject({ requestId: 'req-1', status: 'refused', error: 'unknown operation kind OPERATION_KIND_UNSPECIFIED' })
  })

  it('serves no one outside the allowlist', async () => {
    const served = await pair()
    const stranger = new OperationProtocol({ libp2p: served.net.libp2pOf(strangerId), peers: new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: followerId, addr: '/ip4/127.0.0.1/tcp/1' }], 10_000), local: executor(), log: capture().log, timeouts: FAST })
    await expect(stranger.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 500)).rejects.toThrow(/bad answer from aitbc1|did not answer/)
    await until('the rejection line', () => served.responderLog.some(l => l.event === 'operation_request_failed'))
    expect(served.responderLog.find(l => l.event === 'operation_request_failed')).toMatchObject({ reason: 'not in the allowlist' })
  })

  it('reports a step that failed on the target as failed, and one that ran out of time as timed out', async () => {
    const { requester } = await pair(executor({
      sync: async () => { throw new Error('git: not a repository') },
      report: async () => { throw new TimeoutError('this node\'s health probe did not finish within 100 ms') }
    }))
    const synced = requester.requestSync(followerId, 'aitbc1', 'git.inspect', null, false, 'req-1', 1000)
    await expect(synced).rejects.toThrow(RemoteFailedError)
    await expect(synced).rejects.toThrow('aitbc1 failed: git: not a repository')
    const reported = requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'health', 'req-2', 1000)
    await expect(reported).rejects.toThrow(RemoteTimedOutError)
    await expect(reported).rejects.toThrow(TimeoutError)
  })

  it('reads an error without a status (an older daemon\'s answer) as refused', async () => {
    const { net, requester } = await pair()
    rawResponder(net, () => ({ error: 'unknown operation kind 9' }))
    const asked = requester.requestSync(followerId, 'aitbc1', 'git.inspect', null, false, 'req-1', 1000)
    await expect(asked).rejects.toThrow(RemoteRefusedError)
    await expect(asked).rejects.toThrow('aitbc1 refused: unknown operation kind 9')
  })

  it('ends the exchanges in flight when it stops', async () => {
    const { net, requester } = await pair()
    let received = false
    net.serve(followerId, async stream => {
      await pbStream(stream).read(OperationRequest)
      received = true
    })
    const asked = requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-1', 10_000)
    await until('the request to arrive', () => received)
    await requester.stop()
    await expect(asked).rejects.toThrow('this daemon is stopping')
  })

  it("ends the exchanges in flight when the daemon's shutdown signal aborts, before the protocol itself is stopped", async () => {
    const net = new Network()
    const shutdown = new AbortController()
    const requester = new OperationProtocol({
      libp2p: net.libp2pOf(genesisId),
      peers: new PeerTable([{ name: 'aitbc1', role: 'follower', peerId: followerId, addr: '/ip4/127.0.0.1/tcp/1' }], 10_000),
      local: executor(),
      log: capture().log,
      timeouts: FAST,
      shutdown: shutdown.signal
    })
    await requester.start()
    running.push(requester)
    let received = false
    net.serve(followerId, async stream => {
      await pbStream(stream).read(OperationRequest)
      received = true
    })
    const asked = requester.request(followerId, { name: 'aitbc1', role: 'follower' }, 'status', 'req-2', 10_000)
    await until('the request to arrive', () => received)
    shutdown.abort(new Error('the daemon is stopping'))
    await expect(asked).rejects.toThrow('this daemon is stopping')
  })
})
