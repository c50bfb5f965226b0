import { decodeMessage, encodeMessage, enumeration, message, streamMessage } from 'protons-runtime'
import { alloc as uint8ArrayAlloc } from 'uint8arrays/alloc'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface Envelope {
  id: string
  from: string
  kind: string
  body: Uint8Array<ArrayBuffer>
  sentAtMs: bigint
  expiresAtMs: bigint
  seq: bigint
  agent?: string
}

export namespace Envelope {
  let _codec: Codec<Envelope>

  export const codec = (): Codec<Envelope> => {
    if (_codec == null) {
      _codec = message<Envelope>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.id != null && obj.id !== '')) {
          w.uint32(10)
          w.string(obj.id)
        }

        if ((obj.from != null && obj.from !== '')) {
          w.uint32(18)
          w.string(obj.from)
        }

        if ((obj.kind != null && obj.kind !== '')) {
          w.uint32(26)
          w.string(obj.kind)
        }

        if ((obj.body != null && obj.body.byteLength > 0)) {
          w.uint32(34)
          w.bytes(obj.body)
        }

        if ((obj.sentAtMs != null && obj.sentAtMs !== 0n)) {
          w.uint32(40)
          w.uint64(obj.sentAtMs)
        }

        if ((obj.expiresAtMs != null && obj.expiresAtMs !== 0n)) {
          w.uint32(48)
          w.uint64(obj.expiresAtMs)
        }

        if ((obj.seq != null && obj.seq !== 0n)) {
          w.uint32(56)
          w.uint64(obj.seq)
        }

        if (obj.agent != null) {
          w.uint32(66)
          w.string(obj.agent)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          id: '',
          from: '',
          kind: '',
          body: uint8ArrayAlloc(0),
          sentAtMs: 0n,
          expiresAtMs: 0n,
          seq: 0n
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.id = reader.string()
              break
            }
            case 2: {
              obj.from = reader.string()
              break
            }
            case 3: {
              obj.kind = reader.string()
              break
            }
            case 4: {
              obj.body = reader.bytes()
              break
            }
            case 5: {
              obj.sentAtMs = reader.uint64()
              break
            }
            case 6: {
              obj.expiresAtMs = reader.uint64()
              break
            }
            case 7: {
              obj.seq = reader.uint64()
              break
            }
            case 8: {
              obj.agent = reader.string()
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
                field: `${prefix}.id`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.from`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.kind`,
                value: reader.string()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.body`,
                value: reader.bytes()
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
                field: `${prefix}.expiresAtMs`,
                value: reader.uint64()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.seq`,
                value: reader.uint64()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.agent`,
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

  export interface EnvelopeIdFieldEvent {
    field: '$.id'
    value: string
  }

  export interface EnvelopeFromFieldEvent {
    field: '$.from'
    value: string
  }

  export interface EnvelopeKindFieldEvent {
    field: '$.kind'
    value: string
  }

  export interface EnvelopeBodyFieldEvent {
    field: '$.body'
    value: Uint8Array<ArrayBuffer>
  }

  export interface EnvelopeSentAtMsFieldEvent {
    field: '$.sentAtMs'
    value: bigint
  }

  export interface EnvelopeExpiresAtMsFieldEvent {
    field: '$.expiresAtMs'
    value: bigint
  }

  export interface EnvelopeSeqFieldEvent {
    field: '$.seq'
    value: bigint
  }

  export interface EnvelopeAgentFieldEvent {
    field: '$.agent'
    value: string
  }

  export function encode (obj: Partial<Envelope>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Envelope.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Envelope>): Envelope {
    return decodeMessage(buf, Envelope.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Envelope>): Generator<EnvelopeIdFieldEvent | EnvelopeFromFieldEvent | EnvelopeKindFieldEvent | EnvelopeBodyFieldEvent | EnvelopeSentAtMsFieldEvent | EnvelopeExpiresAtMsFieldEvent | EnvelopeSeqFieldEvent | EnvelopeAgentFieldEvent> {
    return streamMessage(buf, Envelope.codec(), opts)
  }
}

export interface Receipt {
  id: string
  node: string
  status: ReceiptStatus
  storedAtMs: bigint
  reason: string
  handler?: boolean
}

export namespace Receipt {
  let _codec: Codec<Receipt>

  export const codec = (): Codec<Receipt> => {
    if (_codec == null) {
      _codec = message<Receipt>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.id != null && obj.id !== '')) {
          w.uint32(10)
          w.string(obj.id)
        }

        if ((obj.node != null && obj.node !== '')) {
          w.uint32(18)
          w.string(obj.node)
        }

        if (obj.status != null && __ReceiptStatusValues[obj.status] !== 0) {
          w.uint32(24)
          ReceiptStatus.codec().encode(obj.status, w)
        }

        if ((obj.storedAtMs != null && obj.storedAtMs !== 0n)) {
          w.uint32(32)
          w.uint64(obj.storedAtMs)
        }

        if ((obj.reason != null && obj.reason !== '')) {
          w.uint32(42)
          w.string(obj.reason)
        }

        if (obj.handler != null) {
          w.uint32(48)
          w.bool(obj.handler)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          id: '',
          node: '',
          status: ReceiptStatus.RECEIPT_STATUS_UNSPECIFIED,
          storedAtMs: 0n,
          reason: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.id = reader.string()
              break
            }
            case 2: {
              obj.node = reader.string()
              break
            }
            case 3: {
              obj.status = ReceiptStatus.codec().decode(reader)
              break
            }
            case 4: {
              obj.storedAtMs = reader.uint64()
              break
            }
            case 5: {
              obj.reason = reader.string()
              break
            }
            case 6: {
              obj.handler = reader.bool()
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
                field: `${prefix}.id`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.node`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.status`,
                value: ReceiptStatus.codec().decode(reader)
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.storedAtMs`,
                value: reader.uint64()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.reason`,
                value: reader.string()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.handler`,
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

  export interface ReceiptIdFieldEvent {
    field: '$.id'
    value: string
  }

  export interface ReceiptNodeFieldEvent {
    field: '$.node'
    value: string
  }

  export interface ReceiptStatusFieldEvent {
    field: '$.status'
    value: ReceiptStatus
  }

  export interface ReceiptStoredAtMsFieldEvent {
    field: '$.storedAtMs'
    value: bigint
  }

  export interface ReceiptReasonFieldEvent {
    field: '$.reason'
    value: string
  }

  export interface ReceiptHandlerFieldEvent {
    field: '$.handler'
    value: boolean
  }

  export function encode (obj: Partial<Receipt>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, Receipt.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Receipt>): Receipt {
    return decodeMessage(buf, Receipt.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<Receipt>): Generator<ReceiptIdFieldEvent | ReceiptNodeFieldEvent | ReceiptStatusFieldEvent | ReceiptStoredAtMsFieldEvent | ReceiptReasonFieldEvent | ReceiptHandlerFieldEvent> {
    return streamMessage(buf, Receipt.codec(), opts)
  }
}

export enum ReceiptStatus {
  RECEIPT_STATUS_UNSPECIFIED = 'RECEIPT_STATUS_UNSPECIFIED',
  STORED = 'STORED',
  DUPLICATE = 'DUPLICATE',
  REJECTED = 'REJECTED'
}

enum __ReceiptStatusValues {
  RECEIPT_STATUS_UNSPECIFIED = 0,
  STORED = 1,
  DUPLICATE = 2,
  REJECTED = 3
}

export namespace ReceiptStatus {
  export const codec = (): Codec<ReceiptStatus> => {
    return enumeration<ReceiptStatus>(__ReceiptStatusValues)
  }
}
