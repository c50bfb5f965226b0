import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface Heartbeat {
  node: string
  role: NodeRole
  seq: bigint
  startedAtMs: bigint
  sentAtMs: bigint
  healthy: boolean
  blockHeight?: bigint
  p2pConnections: number
  connected: string[]
  storeEpoch?: string
  storeLostFromMs?: bigint
}

export namespace Heartbeat {
  let _codec: Codec<Heartbeat>

  export const codec = (): Codec<Heartbeat> => {
    if (_codec == null) {
      _codec = message<Heartbeat>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.node != null && obj.node !== '')) {
          w.uint32(10)
          w.string(obj.node)
        }

        if (obj.role != null && __NodeRoleValues[obj.role] !== 0) {
          w.uint32(16)
          NodeRole.codec().encode(obj.role, w)
        }

        if ((obj.seq != null && obj.seq !== 0n)) {
          w.uint32(24)
          w.uint64(obj.seq)
        }

        if ((obj.startedAtMs != null && obj.startedAtMs !== 0n)) {
          w.uint32(32)
          w.uint64(obj.startedAtMs)
        }

        if ((obj.sentAtMs != null && obj.sentAtMs !== 0n)) {
          w.uint32(40)
          w.uint64(obj.sentAtMs)
        }

        if ((obj.healthy != null && obj.healthy !== false)) {
          w.uint32(48)
          w.bool(obj.healthy)
        }

        if (obj.blockHeight != null) {
          w.uint32(56)
          w.uint64(obj.blockHeight)
        }

        if ((obj.p2pConnections != null && obj.p2pConnections !== 0)) {
          w.uint32(64)
          w.uint32(obj.p2pConnections)
        }

        if (obj.connected != null && obj.connected.length > 0) {
          for (const value of obj.connected) {
            w.uint32(74)
            w.string(value)
          }
        }

        if (obj.storeEpoch != null) {
          w.uint32(82)
          w.string(obj.storeEpoch)
        }

        if (obj.storeLostFromMs != null) {
          w.uint32(88)
          w.uint64(obj.storeLostFromMs)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          node: '',
          role: NodeRole.NODE_ROLE_UNSPECIFIED,
          seq: 0n,
          startedAtMs: 0n,
          sentAtMs: 0n,
          healthy: false,
          p2pConnections: 0,
          connected: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.node = reader.string()
              break
            }
            case 2: {
              obj.role = NodeRole.codec().decode(reader)
              break
            }
            case 3: {
              obj.seq = reader.uint64()
              break
            }
            case 4: {
              obj.startedAtMs = reader.uint64()
              break
            }
            case 5: {
              obj.sentAtMs = reader.uint64()
              break
            }
            case 6: {
              obj.healthy = reader.bool()
              break
            }
            case 7: {
              obj.blockHeight = reader.uint64()
              break
            }
            case 8: {
              obj.p2pConnections = reader.uint32()
              break
            }
            case 9: {
              if (opts.limits?.connected != null && obj.connected.length === opts.limits.connected) {
                throw new MaxLengthError('Decode error - repeated field "connected" had too many elements')
              }

              obj.connected.push(reader.string())
              break
            }
            case 10: {
              obj.storeEpoch = reader.string()
              break
            }
            case 11: {
              obj.storeLostFromMs = reader.uint64()
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }

        return obj
      }, function * (reader, length, prefix, opts = {}) {
        const obj = {
          connected: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.node`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.role`,
                value: NodeRole.codec().decode(reader)
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.seq`,
                value: reader.uint64()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.startedAtMs`,
                value: reader.uint64()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.sentAtMs`,
                value: reader.uint64()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.healthy`,
                value: reader.bool()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.blockHeight`,
                value: reader.uint64()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.p2pConnections`,
                value: reader.uint32()
              }
              break
            }
            case 9: {
              if (opts.limits?.connected != null && obj.connected === opts.limits.connected) {
                throw new MaxLengthError('Streaming decode error - repeated field "connected" had too many elements')
              }

              yield {
                field: `${prefix}.connected[]`,
                index: obj.connected,
                value: reader.string()
              }

              obj.connected++

              break
            }
            case 10: {
              yield {
                field: `${prefix}.storeEpoch`,
                value: reader.string()
              }
              break
            }
            case 11: {
              yield {
                field: `${prefix}.storeLostFromMs`,
                value: reader.uint64()
              }
              break
            }
            default: {
              reader.skipType(tag & 7)
              break
            }
          }
        }
      })
    }

    return _codec
  }

  export interface HeartbeatNodeFieldEvent {
    field: '$.node'
    value: string
  }

  export interface HeartbeatRoleFieldEvent {
    field: '$.role'
    value: NodeRole
  }

  export interface HeartbeatSeqFieldEvent {
    field: '$.seq'
    value: bigint
  }

  export interface HeartbeatStartedAtMsFieldEvent {
    field: '$.startedAtMs'
    value: bigint
  }

  export interface HeartbeatSentAtMsFieldEvent {
    field: '$.sentAtMs'
    value: bigint
  }

  export interface HeartbeatHealthyFieldEvent {
    field: '$.healthy'
    value: boolean
  }

  export interface HeartbeatBlockHeightFieldEvent {
    field: '$.blockHeight'
    value: bigint
  }

  export interface HeartbeatP2pConnectionsFieldEvent {
    field: '$.p2pConnections'
    value: number
  }

  export interface HeartbeatConnectedFieldEvent {
    field: '$.connected[]'
    index: number
    value: string
  }

  export interface HeartbeatStoreEpochFieldEvent {
    field: '$.storeEpoch'
    value: string
  }

  export interface HeartbeatStoreLostFromMsFieldEvent {
    field: '$.storeLostFromMs'
    value: bigint
  }

  export function encode (obj: Partial<Heartbeat>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Heartbeat.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Heartbeat>): Heartbeat {
    return decodeMessage(buf, Heartbeat.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Heartbeat>): Generator<HeartbeatNodeFieldEvent | HeartbeatRoleFieldEvent | HeartbeatSeqFieldEvent | HeartbeatStartedAtMsFieldEvent | HeartbeatSentAtMsFieldEvent | HeartbeatHealthyFieldEvent | HeartbeatBlockHeightFieldEvent | HeartbeatP2pConnectionsFieldEvent | HeartbeatConnectedFieldEvent | HeartbeatStoreEpochFieldEvent | HeartbeatStoreLostFromMsFieldEvent> {
    return streamMessage(buf, Heartbeat.codec(), opts)
  }
}

export enum NodeRole {
  NODE_ROLE_UNSPECIFIED = 'NODE_ROLE_UNSPECIFIED',
  GENESIS = 'GENESIS',
  FOLLOWER = 'FOLLOWER'
}

enum __NodeRoleValues {
  NODE_ROLE_UNSPECIFIED = 0,
  GENESIS = 1,
  FOLLOWER = 2
}

export namespace NodeRole {
  export const codec = (): Codec<NodeRole> => {
    return enumeration<NodeRole>(__NodeRoleValues)
  }
}
