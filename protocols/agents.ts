import { decodeMessage, encodeMessage, MaxLengthError, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface Clock {
  ms: bigint
  counter: number
  node: string
}

export namespace Clock {
  let _codec: Codec<Clock>

  export const codec = (): Codec<Clock> => {
    if (_codec == null) {
      _codec = message<Clock>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.ms != null && obj.ms !== 0n)) {
          w.uint32(8)
          w.uint64(obj.ms)
        }

        if ((obj.counter != null && obj.counter !== 0)) {
          w.uint32(16)
          w.uint32(obj.counter)
        }

        if ((obj.node != null && obj.node !== '')) {
          w.uint32(26)
          w.string(obj.node)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          ms: 0n,
          counter: 0,
          node: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.ms = reader.uint64()
              break
            }
            case 2: {
              obj.counter = reader.uint32()
              break
            }
            case 3: {
              obj.node = reader.string()
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
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.ms`,
                value: reader.uint64()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.counter`,
                value: reader.uint32()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.node`,
                value: reader.string()
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

  export interface ClockMsFieldEvent {
    field: '$.ms'
    value: bigint
  }

  export interface ClockCounterFieldEvent {
    field: '$.counter'
    value: number
  }

  export interface ClockNodeFieldEvent {
    field: '$.node'
    value: string
  }

  export function encode (obj: Partial<Clock>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Clock.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Clock>): Clock {
    return decodeMessage(buf, Clock.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Clock>): Generator<ClockMsFieldEvent | ClockCounterFieldEvent | ClockNodeFieldEvent> {
    return streamMessage(buf, Clock.codec(), opts)
  }
}

export interface AgentUpdate {
  origin: string
  agentId: string
  clock?: Clock
  removed: boolean
  recordJson: string
  owner: string
  signature: Uint8Array<ArrayBuffer>
}

export namespace AgentUpdate {
  let _codec: Codec<AgentUpdate>

  export const codec = (): Codec<AgentUpdate> => {
    if (_codec == null) {
      _codec = message<AgentUpdate>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.origin != null && obj.origin !== '')) {
          w.uint32(10)
          w.string(obj.origin)
        }

        if ((obj.agentId != null && obj.agentId !== '')) {
          w.uint32(18)
          w.string(obj.agentId)
        }

        if (obj.clock != null) {
          w.uint32(26)
          Clock.codec().encode(obj.clock, w)
        }

        if ((obj.removed != null && obj.removed !== false)) {
          w.uint32(32)
          w.bool(obj.removed)
        }

        if ((obj.recordJson != null && obj.recordJson !== '')) {
          w.uint32(42)
          w.string(obj.recordJson)
        }

        if ((obj.owner != null && obj.owner !== '')) {
          w.uint32(50)
          w.string(obj.owner)
        }

        if ((obj.signature != null && obj.signature.byteLength > 0)) {
          w.uint32(58)
          w.bytes(obj.signature)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          origin: '',
          agentId: '',
          removed: false,
          recordJson: '',
          owner: '',
          signature: uint8ArrayAlloc(0)
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.origin = reader.string()
              break
            }
            case 2: {
              obj.agentId = reader.string()
              break
            }
            case 3: {
              obj.clock = Clock.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.clock
              })
              break
            }
            case 4: {
              obj.removed = reader.bool()
              break
            }
            case 5: {
              obj.recordJson = reader.string()
              break
            }
            case 6: {
              obj.owner = reader.string()
              break
            }
            case 7: {
              obj.signature = reader.bytes()
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
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.origin`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.agentId`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield * Clock.codec().stream(reader, reader.uint32(), `${prefix}.clock`, {
                limits: opts.limits?.clock
              })

              break
            }
            case 4: {
              yield {
                field: `${prefix}.removed`,
                value: reader.bool()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.recordJson`,
                value: reader.string()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.owner`,
                value: reader.string()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.signature`,
                value: reader.bytes()
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

  export interface AgentUpdateOriginFieldEvent {
    field: '$.origin'
    value: string
  }

  export interface AgentUpdateAgentIdFieldEvent {
    field: '$.agentId'
    value: string
  }

  export interface AgentUpdateClockMsFieldEvent {
    field: '$.clock.ms'
    value: bigint
  }

  export interface AgentUpdateClockCounterFieldEvent {
    field: '$.clock.counter'
    value: number
  }

  export interface AgentUpdateClockNodeFieldEvent {
    field: '$.clock.node'
    value: string
  }

  export interface AgentUpdateRemovedFieldEvent {
    field: '$.removed'
    value: boolean
  }

  export interface AgentUpdateRecordJsonFieldEvent {
    field: '$.recordJson'
    value: string
  }

  export interface AgentUpdateOwnerFieldEvent {
    field: '$.owner'
    value: string
  }

  export interface AgentUpdateSignatureFieldEvent {
    field: '$.signature'
    value: Uint8Array<ArrayBuffer>
  }

  export function encode (obj: Partial<AgentUpdate>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, AgentUpdate.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AgentUpdate>): AgentUpdate {
    return decodeMessage(buf, AgentUpdate.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<AgentUpdate>): Generator<AgentUpdateOriginFieldEvent | AgentUpdateAgentIdFieldEvent | AgentUpdateClockMsFieldEvent | AgentUpdateClockCounterFieldEvent | AgentUpdateClockNodeFieldEvent | AgentUpdateRemovedFieldEvent | AgentUpdateRecordJsonFieldEvent | AgentUpdateOwnerFieldEvent | AgentUpdateSignatureFieldEvent> {
    return streamMessage(buf, AgentUpdate.codec(), opts)
  }
}

export interface SignedAgentChange {
  domain: string
  agentId: string
  clock?: Clock
  removed: boolean
  recordJson: string
  owner: string
}

export namespace SignedAgentChange {
  let _codec: Codec<SignedAgentChange>

  export const codec = (): Codec<SignedAgentChange> => {
    if (_codec == null) {
      _codec = message<SignedAgentChange>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.domain != null && obj.domain !== '')) {
          w.uint32(10)
          w.string(obj.domain)
        }

        if ((obj.agentId != null && obj.agentId !== '')) {
          w.uint32(18)
          w.string(obj.agentId)
        }

        if (obj.clock != null) {
          w.uint32(26)
          Clock.codec().encode(obj.clock, w)
        }

        if ((obj.removed != null && obj.removed !== false)) {
          w.uint32(32)
          w.bool(obj.removed)
        }

        if ((obj.recordJson != null && obj.recordJson !== '')) {
          w.uint32(42)
          w.string(obj.recordJson)
        }

        if ((obj.owner != null && obj.owner !== '')) {
          w.uint32(50)
          w.string(obj.owner)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          domain: '',
          agentId: '',
          removed: false,
          recordJson: '',
          owner: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.domain = reader.string()
              break
            }
            case 2: {
              obj.agentId = reader.string()
              break
            }
            case 3: {
              obj.clock = Clock.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.clock
              })
              break
            }
            case 4: {
              obj.removed = reader.bool()
              break
            }
            case 5: {
              obj.recordJson = reader.string()
              break
            }
            case 6: {
              obj.owner = reader.string()
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
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.domain`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.agentId`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield * Clock.codec().stream(reader, reader.uint32(), `${prefix}.clock`, {
                limits: opts.limits?.clock
              })

              break
            }
            case 4: {
              yield {
                field: `${prefix}.removed`,
                value: reader.bool()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.recordJson`,
                value: reader.string()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.owner`,
                value: reader.string()
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

  export interface SignedAgentChangeDomainFieldEvent {
    field: '$.domain'
    value: string
  }

  export interface SignedAgentChangeAgentIdFieldEvent {
    field: '$.agentId'
    value: string
  }

  export interface SignedAgentChangeClockMsFieldEvent {
    field: '$.clock.ms'
    value: bigint
  }

  export interface SignedAgentChangeClockCounterFieldEvent {
    field: '$.clock.counter'
    value: number
  }

  export interface SignedAgentChangeClockNodeFieldEvent {
    field: '$.clock.node'
    value: string
  }

  export interface SignedAgentChangeRemovedFieldEvent {
    field: '$.removed'
    value: boolean
  }

  export interface SignedAgentChangeRecordJsonFieldEvent {
    field: '$.recordJson'
    value: string
  }

  export interface SignedAgentChangeOwnerFieldEvent {
    field: '$.owner'
    value: string
  }

  export function encode (obj: Partial<SignedAgentChange>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, SignedAgentChange.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SignedAgentChange>): SignedAgentChange {
    return decodeMessage(buf, SignedAgentChange.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SignedAgentChange>): Generator<SignedAgentChangeDomainFieldEvent | SignedAgentChangeAgentIdFieldEvent | SignedAgentChangeClockMsFieldEvent | SignedAgentChangeClockCounterFieldEvent | SignedAgentChangeClockNodeFieldEvent | SignedAgentChangeRemovedFieldEvent | SignedAgentChangeRecordJsonFieldEvent | SignedAgentChangeOwnerFieldEvent> {
    return streamMessage(buf, SignedAgentChange.codec(), opts)
  }
}

export interface DigestEntry {
  agentId: string
  clock?: Clock
}

export namespace DigestEntry {
  let _codec: Codec<DigestEntry>

  export const codec = (): Codec<DigestEntry> => {
    if (_codec == null) {
      _codec = message<DigestEntry>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.agentId != null && obj.agentId !== '')) {
          w.uint32(10)
          w.string(obj.agentId)
        }

        if (obj.clock != null) {
          w.uint32(18)
          Clock.codec().encode(obj.clock, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          agentId: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.agentId = reader.string()
              break
            }
            case 2: {
              obj.clock = Clock.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.clock
              })
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
        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              yield {
                field: `${prefix}.agentId`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield * Clock.codec().stream(reader, reader.uint32(), `${prefix}.clock`, {
                limits: opts.limits?.clock
              })

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

  export interface DigestEntryAgentIdFieldEvent {
    field: '$.agentId'
    value: string
  }

  export interface DigestEntryClockMsFieldEvent {
    field: '$.clock.ms'
    value: bigint
  }

  export interface DigestEntryClockCounterFieldEvent {
    field: '$.clock.counter'
    value: number
  }

  export interface DigestEntryClockNodeFieldEvent {
    field: '$.clock.node'
    value: string
  }

  export function encode (obj: Partial<DigestEntry>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, DigestEntry.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DigestEntry>): DigestEntry {
    return decodeMessage(buf, DigestEntry.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<DigestEntry>): Generator<DigestEntryAgentIdFieldEvent | DigestEntryClockMsFieldEvent | DigestEntryClockCounterFieldEvent | DigestEntryClockNodeFieldEvent> {
    return streamMessage(buf, DigestEntry.codec(), opts)
  }
}

export interface SyncRequest {
  digest: DigestEntry[]
}

export namespace SyncRequest {
  let _codec: Codec<SyncRequest>

  export const codec = (): Codec<SyncRequest> => {
    if (_codec == null) {
      _codec = message<SyncRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.digest != null && obj.digest.length > 0) {
          for (const value of obj.digest) {
            w.uint32(10)
            DigestEntry.codec().encode(value, w)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          digest: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.digest != null && obj.digest.length === opts.limits.digest) {
                throw new MaxLengthError('Decode error - repeated field "digest" had too many elements')
              }

              obj.digest.push(DigestEntry.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.digest$
              }))
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
          digest: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.digest != null && obj.digest === opts.limits.digest) {
                throw new MaxLengthError('Streaming decode error - repeated field "digest" had too many elements')
              }

              for (const evt of DigestEntry.codec().stream(reader, reader.uint32(), `${prefix}.digest[]`, {
                limits: opts.limits?.digest$
              })) {
                yield {
                  ...evt,
                  index: obj.digest
                }
              }

              obj.digest++

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

  export interface SyncRequestDigestAgentIdFieldEvent {
    field: '$.digest[].agentId'
    value: string
    index: number
  }

  export interface SyncRequestDigestClockMsFieldEvent {
    field: '$.digest[].clock.ms'
    value: bigint
    index: number
  }

  export interface SyncRequestDigestClockCounterFieldEvent {
    field: '$.digest[].clock.counter'
    value: number
    index: number
  }

  export interface SyncRequestDigestClockNodeFieldEvent {
    field: '$.digest[].clock.node'
    value: string
    index: number
  }

  export function encode (obj: Partial<SyncRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, SyncRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncRequest>): SyncRequest {
    return decodeMessage(buf, SyncRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncRequest>): Generator<SyncRequestDigestAgentIdFieldEvent | SyncRequestDigestClockMsFieldEvent | SyncRequestDigestClockCounterFieldEvent | SyncRequestDigestClockNodeFieldEvent> {
    return streamMessage(buf, SyncRequest.codec(), opts)
  }
}

export interface SyncResponse {
  updates: AgentUpdate[]
  want: string[]
  more: boolean
}

export namespace SyncResponse {
  let _codec: Codec<SyncResponse>

  export const codec = (): Codec<SyncResponse> => {
    if (_codec == null) {
      _codec = message<SyncResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.updates != null && obj.updates.length > 0) {
          for (const value of obj.updates) {
            w.uint32(10)
            AgentUpdate.codec().encode(value, w)
          }
        }

        if (obj.want != null && obj.want.length > 0) {
          for (const value of obj.want) {
            w.uint32(18)
            w.string(value)
          }
        }

        if ((obj.more != null && obj.more !== false)) {
          w.uint32(24)
          w.bool(obj.more)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          updates: [],
          want: [],
          more: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.updates != null && obj.updates.length === opts.limits.updates) {
                throw new MaxLengthError('Decode error - repeated field "updates" had too many elements')
              }

              obj.updates.push(AgentUpdate.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.updates$
              }))
              break
            }
            case 2: {
              if (opts.limits?.want != null && obj.want.length === opts.limits.want) {
                throw new MaxLengthError('Decode error - repeated field "want" had too many elements')
              }

              obj.want.push(reader.string())
              break
            }
            case 3: {
              obj.more = reader.bool()
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
          updates: 0,
          want: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.updates != null && obj.updates === opts.limits.updates) {
                throw new MaxLengthError('Streaming decode error - repeated field "updates" had too many elements')
              }

              for (const evt of AgentUpdate.codec().stream(reader, reader.uint32(), `${prefix}.updates[]`, {
                limits: opts.limits?.updates$
              })) {
                yield {
                  ...evt,
                  index: obj.updates
                }
              }

              obj.updates++

              break
            }
            case 2: {
              if (opts.limits?.want != null && obj.want === opts.limits.want) {
                throw new MaxLengthError('Streaming decode error - repeated field "want" had too many elements')
              }

              yield {
                field: `${prefix}.want[]`,
                index: obj.want,
                value: reader.string()
              }

              obj.want++

              break
            }
            case 3: {
              yield {
                field: `${prefix}.more`,
                value: reader.bool()
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

  export interface SyncResponseUpdatesOriginFieldEvent {
    field: '$.updates[].origin'
    value: string
    index: number
  }

  export interface SyncResponseUpdatesAgentIdFieldEvent {
    field: '$.updates[].agentId'
    value: string
    index: number
  }

  export interface SyncResponseUpdatesClockMsFieldEvent {
    field: '$.updates[].clock.ms'
    value: bigint
    index: number
  }

  export interface SyncResponseUpdatesClockCounterFieldEvent {
    field: '$.updates[].clock.counter'
    value: number
    index: number
  }

  export interface SyncResponseUpdatesClockNodeFieldEvent {
    field: '$.updates[].clock.node'
    value: string
    index: number
  }

  export interface SyncResponseUpdatesRemovedFieldEvent {
    field: '$.updates[].removed'
    value: boolean
    index: number
  }

  export interface SyncResponseUpdatesRecordJsonFieldEvent {
    field: '$.updates[].recordJson'
    value: string
    index: number
  }

  export interface SyncResponseUpdatesOwnerFieldEvent {
    field: '$.updates[].owner'
    value: string
    index: number
  }

  export interface SyncResponseUpdatesSignatureFieldEvent {
    field: '$.updates[].signature'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export interface SyncResponseWantFieldEvent {
    field: '$.want[]'
    index: number
    value: string
  }

  export interface SyncResponseMoreFieldEvent {
    field: '$.more'
    value: boolean
  }

  export function encode (obj: Partial<SyncResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, SyncResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncResponse>): SyncResponse {
    return decodeMessage(buf, SyncResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncResponse>): Generator<SyncResponseUpdatesOriginFieldEvent | SyncResponseUpdatesAgentIdFieldEvent | SyncResponseUpdatesClockMsFieldEvent | SyncResponseUpdatesClockCounterFieldEvent | SyncResponseUpdatesClockNodeFieldEvent | SyncResponseUpdatesRemovedFieldEvent | SyncResponseUpdatesRecordJsonFieldEvent | SyncResponseUpdatesOwnerFieldEvent | SyncResponseUpdatesSignatureFieldEvent | SyncResponseWantFieldEvent | SyncResponseMoreFieldEvent> {
    return streamMessage(buf, SyncResponse.codec(), opts)
  }
}

export interface SyncPush {
  updates: AgentUpdate[]
}

export namespace SyncPush {
  let _codec: Codec<SyncPush>

  export const codec = (): Codec<SyncPush> => {
    if (_codec == null) {
      _codec = message<SyncPush>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if (obj.updates != null && obj.updates.length > 0) {
          for (const value of obj.updates) {
            w.uint32(10)
            AgentUpdate.codec().encode(value, w)
          }
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          updates: []
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.updates != null && obj.updates.length === opts.limits.updates) {
                throw new MaxLengthError('Decode error - repeated field "updates" had too many elements')
              }

              obj.updates.push(AgentUpdate.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.updates$
              }))
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
          updates: 0
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              if (opts.limits?.updates != null && obj.updates === opts.limits.updates) {
                throw new MaxLengthError('Streaming decode error - repeated field "updates" had too many elements')
              }

              for (const evt of AgentUpdate.codec().stream(reader, reader.uint32(), `${prefix}.updates[]`, {
                limits: opts.limits?.updates$
              })) {
                yield {
                  ...evt,
                  index: obj.updates
                }
              }

              obj.updates++

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

  export interface SyncPushUpdatesOriginFieldEvent {
    field: '$.updates[].origin'
    value: string
    index: number
  }

  export interface SyncPushUpdatesAgentIdFieldEvent {
    field: '$.updates[].agentId'
    value: string
    index: number
  }

  export interface SyncPushUpdatesClockMsFieldEvent {
    field: '$.updates[].clock.ms'
    value: bigint
    index: number
  }

  export interface SyncPushUpdatesClockCounterFieldEvent {
    field: '$.updates[].clock.counter'
    value: number
    index: number
  }

  export interface SyncPushUpdatesClockNodeFieldEvent {
    field: '$.updates[].clock.node'
    value: string
    index: number
  }

  export interface SyncPushUpdatesRemovedFieldEvent {
    field: '$.updates[].removed'
    value: boolean
    index: number
  }

  export interface SyncPushUpdatesRecordJsonFieldEvent {
    field: '$.updates[].recordJson'
    value: string
    index: number
  }

  export interface SyncPushUpdatesOwnerFieldEvent {
    field: '$.updates[].owner'
    value: string
    index: number
  }

  export interface SyncPushUpdatesSignatureFieldEvent {
    field: '$.updates[].signature'
    value: Uint8Array<ArrayBuffer>
    index: number
  }

  export function encode (obj: Partial<SyncPush>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, SyncPush.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncPush>): SyncPush {
    return decodeMessage(buf, SyncPush.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<SyncPush>): Generator<SyncPushUpdatesOriginFieldEvent | SyncPushUpdatesAgentIdFieldEvent | SyncPushUpdatesClockMsFieldEvent | SyncPushUpdatesClockCounterFieldEvent | SyncPushUpdatesClockNodeFieldEvent | SyncPushUpdatesRemovedFieldEvent | SyncPushUpdatesRecordJsonFieldEvent | SyncPushUpdatesOwnerFieldEvent | SyncPushUpdatesSignatureFieldEvent> {
    return streamMessage(buf, SyncPush.codec(), opts)
  }
}
