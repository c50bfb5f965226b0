import { decodeMessage, encodeMessage, enumeration, MaxLengthError, message, streamMessage } from 'protons-runtime'
import type { Codec, DecodeOptions } from 'protons-runtime'
import type { Uint8ArrayList } from 'uint8arraylist'

export interface OperationRequest {
  requestId: string
  kind: OperationKind
  timeoutMs: number
  action: string
  force: boolean
  syncStep: string
  payloadJson: string
  overrideQuorum: boolean
}

export namespace OperationRequest {
  let _codec: Codec<OperationRequest>

  export const codec = (): Codec<OperationRequest> => {
    if (_codec == null) {
      _codec = message<OperationRequest>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.requestId != null && obj.requestId !== '')) {
          w.uint32(10)
          w.string(obj.requestId)
        }

        if (obj.kind != null && __OperationKindValues[obj.kind] !== 0) {
          w.uint32(16)
          OperationKind.codec().encode(obj.kind, w)
        }

        if ((obj.timeoutMs != null && obj.timeoutMs !== 0)) {
          w.uint32(24)
          w.uint32(obj.timeoutMs)
        }

        if ((obj.action != null && obj.action !== '')) {
          w.uint32(34)
          w.string(obj.action)
        }

        if ((obj.force != null && obj.force !== false)) {
          w.uint32(40)
          w.bool(obj.force)
        }

        if ((obj.syncStep != null && obj.syncStep !== '')) {
          w.uint32(50)
          w.string(obj.syncStep)
        }

        if ((obj.payloadJson != null && obj.payloadJson !== '')) {
          w.uint32(58)
          w.string(obj.payloadJson)
        }

        if ((obj.overrideQuorum != null && obj.overrideQuorum !== false)) {
          w.uint32(64)
          w.bool(obj.overrideQuorum)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          requestId: '',
          kind: OperationKind.OPERATION_KIND_UNSPECIFIED,
          timeoutMs: 0,
          action: '',
          force: false,
          syncStep: '',
          payloadJson: '',
          overrideQuorum: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.requestId = reader.string()
              break
            }
            case 2: {
              obj.kind = OperationKind.codec().decode(reader)
              break
            }
            case 3: {
              obj.timeoutMs = reader.uint32()
              break
            }
            case 4: {
              obj.action = reader.string()
              break
            }
            case 5: {
              obj.force = reader.bool()
              break
            }
            case 6: {
              obj.syncStep = reader.string()
              break
            }
            case 7: {
              obj.payloadJson = reader.string()
              break
            }
            case 8: {
              obj.overrideQuorum = reader.bool()
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
                field: `${prefix}.requestId`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.kind`,
                value: OperationKind.codec().decode(reader)
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.timeoutMs`,
                value: reader.uint32()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.action`,
                value: reader.string()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.force`,
                value: reader.bool()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.syncStep`,
                value: reader.string()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.payloadJson`,
                value: reader.string()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.overrideQuorum`,
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

  export interface OperationRequestRequestIdFieldEvent {
    field: '$.requestId'
    value: string
  }

  export interface OperationRequestKindFieldEvent {
    field: '$.kind'
    value: OperationKind
  }

  export interface OperationRequestTimeoutMsFieldEvent {
    field: '$.timeoutMs'
    value: number
  }

  export interface OperationRequestActionFieldEvent {
    field: '$.action'
    value: string
  }

  export interface OperationRequestForceFieldEvent {
    field: '$.force'
    value: boolean
  }

  export interface OperationRequestSyncStepFieldEvent {
    field: '$.syncStep'
    value: string
  }

  export interface OperationRequestPayloadJsonFieldEvent {
    field: '$.payloadJson'
    value: string
  }

  export interface OperationRequestOverrideQuorumFieldEvent {
    field: '$.overrideQuorum'
    value: boolean
  }

  export function encode (obj: Partial<OperationRequest>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, OperationRequest.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<OperationRequest>): OperationRequest {
    return decodeMessage(buf, OperationRequest.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<OperationRequest>): Generator<OperationRequestRequestIdFieldEvent | OperationRequestKindFieldEvent | OperationRequestTimeoutMsFieldEvent | OperationRequestActionFieldEvent | OperationRequestForceFieldEvent | OperationRequestSyncStepFieldEvent | OperationRequestPayloadJsonFieldEvent | OperationRequestOverrideQuorumFieldEvent> {
    return streamMessage(buf, OperationRequest.codec(), opts)
  }
}

export enum OperationKind {
  OPERATION_KIND_UNSPECIFIED = 'OPERATION_KIND_UNSPECIFIED',
  STATUS = 'STATUS',
  HEALTH = 'HEALTH',
  COORDINATE = 'COORDINATE',
  SYNC = 'SYNC'
}

enum __OperationKindValues {
  OPERATION_KIND_UNSPECIFIED = 0,
  STATUS = 1,
  HEALTH = 2,
  COORDINATE = 3,
  SYNC = 4
}

export namespace OperationKind {
  export const codec = (): Codec<OperationKind> => {
    return enumeration<OperationKind>(__OperationKindValues)
  }
}

export interface OperationResponse {
  requestId: string
  error: string
  report?: NodeReport
  actionResult?: ActionResult
  payloadJson: string
  status?: string
}

export namespace OperationResponse {
  let _codec: Codec<OperationResponse>

  export const codec = (): Codec<OperationResponse> => {
    if (_codec == null) {
      _codec = message<OperationResponse>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.requestId != null && obj.requestId !== '')) {
          w.uint32(10)
          w.string(obj.requestId)
        }

        if ((obj.error != null && obj.error !== '')) {
          w.uint32(18)
          w.string(obj.error)
        }

        if (obj.report != null) {
          w.uint32(26)
          NodeReport.codec().encode(obj.report, w)
        }

        if (obj.actionResult != null) {
          w.uint32(34)
          ActionResult.codec().encode(obj.actionResult, w)
        }

        if ((obj.payloadJson != null && obj.payloadJson !== '')) {
          w.uint32(42)
          w.string(obj.payloadJson)
        }

        if (obj.status != null) {
          w.uint32(50)
          w.string(obj.status)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          requestId: '',
          error: '',
          payloadJson: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.requestId = reader.string()
              break
            }
            case 2: {
              obj.error = reader.string()
              break
            }
            case 3: {
              obj.report = NodeReport.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.report
              })
              break
            }
            case 4: {
              obj.actionResult = ActionResult.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.actionResult
              })
              break
            }
            case 5: {
              obj.payloadJson = reader.string()
              break
            }
            case 6: {
              obj.status = reader.string()
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
                field: `${prefix}.requestId`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.error`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield * NodeReport.codec().stream(reader, reader.uint32(), `${prefix}.report`, {
                limits: opts.limits?.report
              })

              break
            }
            case 4: {
              yield * ActionResult.codec().stream(reader, reader.uint32(), `${prefix}.actionResult`, {
                limits: opts.limits?.actionResult
              })

              break
            }
            case 5: {
              yield {
                field: `${prefix}.payloadJson`,
                value: reader.string()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.status`,
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

  export interface OperationResponseRequestIdFieldEvent {
    field: '$.requestId'
    value: string
  }

  export interface OperationResponseErrorFieldEvent {
    field: '$.error'
    value: string
  }

  export interface OperationResponseReportNodeFieldEvent {
    field: '$.report.node'
    value: string
  }

  export interface OperationResponseReportRoleFieldEvent {
    field: '$.report.role'
    value: string
  }

  export interface OperationResponseReportStatusFieldEvent {
    field: '$.report.status'
    value: string
  }

  export interface OperationResponseReportBlockHeightFieldEvent {
    field: '$.report.blockHeight'
    value: bigint
  }

  export interface OperationResponseReportMempoolSizeFieldEvent {
    field: '$.report.mempoolSize'
    value: bigint
  }

  export interface OperationResponseReportP2pConnectionsFieldEvent {
    field: '$.report.p2pConnections'
    value: number
  }

  export interface OperationResponseReportServiceUptimeFieldEvent {
    field: '$.report.serviceUptime'
    value: string
  }

  export interface OperationResponseReportLastSyncFieldEvent {
    field: '$.report.lastSync'
    value: bigint
  }

  export interface OperationResponseReportIssuesFieldEvent {
    field: '$.report.issues[]'
    index: number
    value: string
  }

  export interface OperationResponseReportChecksNameFieldEvent {
    field: '$.report.checks[].name'
    value: string
    index: number
  }

  export interface OperationResponseReportChecksOkFieldEvent {
    field: '$.report.checks[].ok'
    value: boolean
    index: number
  }

  export interface OperationResponseReportChecksDetailFieldEvent {
    field: '$.report.checks[].detail'
    value: string
    index: number
  }

  export interface OperationResponseReportChecksStateFieldEvent {
    field: '$.report.checks[].state'
    value: string
    index: number
  }

  export interface OperationResponseReportDaemonUptimeMsFieldEvent {
    field: '$.report.daemonUptimeMs'
    value: bigint
  }

  export interface OperationResponseReportProbedAtMsFieldEvent {
    field: '$.report.probedAtMs'
    value: bigint
  }

  export interface OperationResponseReportChainsChainIdFieldEvent {
    field: '$.report.chains[].chainId'
    value: string
    index: number
  }

  export interface OperationResponseReportChainsBlockHeightFieldEvent {
    field: '$.report.chains[].blockHeight'
    value: bigint
    index: number
  }

  export interface OperationResponseReportChainsMempoolSizeFieldEvent {
    field: '$.report.chains[].mempoolSize'
    value: bigint
    index: number
  }

  export interface OperationResponseReportChainsMempoolAtLeastFieldEvent {
    field: '$.report.chains[].mempoolAtLeast'
    value: boolean
    index: number
  }

  export interface OperationResponseReportStoreKindFieldEvent {
    field: '$.report.store.kind'
    value: string
  }

  export interface OperationResponseReportStoreDurabilityLevelFieldEvent {
    field: '$.report.store.durabilityLevel'
    value: string
  }

  export interface OperationResponseReportStoreDurabilityDetailFieldEvent {
    field: '$.report.store.durabilityDetail'
    value: string
  }

  export interface OperationResponseActionResultActionFieldEvent {
    field: '$.actionResult.action'
    value: string
  }

  export interface OperationResponseActionResultStateFieldEvent {
    field: '$.actionResult.state'
    value: string
  }

  export interface OperationResponseActionResultExitCodeFieldEvent {
    field: '$.actionResult.exitCode'
    value: number
  }

  export interface OperationResponseActionResultDurationMsFieldEvent {
    field: '$.actionResult.durationMs'
    value: bigint
  }

  export interface OperationResponseActionResultOutputTailFieldEvent {
    field: '$.actionResult.outputTail'
    value: string
  }

  export interface OperationResponseActionResultReasonFieldEvent {
    field: '$.actionResult.reason'
    value: string
  }

  export interface OperationResponseActionResultDestructiveFieldEvent {
    field: '$.actionResult.destructive'
    value: boolean
  }

  export interface OperationResponseActionResultHealthBeforeFieldEvent {
    field: '$.actionResult.healthBefore'
    value: string
  }

  export interface OperationResponseActionResultHealthAfterFieldEvent {
    field: '$.actionResult.healthAfter'
    value: string
  }

  export interface OperationResponsePayloadJsonFieldEvent {
    field: '$.payloadJson'
    value: string
  }

  export interface OperationResponseStatusFieldEvent {
    field: '$.status'
    value: string
  }

  export function encode (obj: Partial<OperationResponse>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, OperationResponse.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<OperationResponse>): OperationResponse {
    return decodeMessage(buf, OperationResponse.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<OperationResponse>): Generator<OperationResponseRequestIdFieldEvent | OperationResponseErrorFieldEvent | OperationResponseReportNodeFieldEvent | OperationResponseReportRoleFieldEvent | OperationResponseReportStatusFieldEvent | OperationResponseReportBlockHeightFieldEvent | OperationResponseReportMempoolSizeFieldEvent | OperationResponseReportP2pConnectionsFieldEvent | OperationResponseReportServiceUptimeFieldEvent | OperationResponseReportLastSyncFieldEvent | OperationResponseReportIssuesFieldEvent | OperationResponseReportChecksNameFieldEvent | OperationResponseReportChecksOkFieldEvent | OperationResponseReportChecksDetailFieldEvent | OperationResponseReportChecksStateFieldEvent | OperationResponseReportDaemonUptimeMsFieldEvent | OperationResponseReportProbedAtMsFieldEvent | OperationResponseReportChainsChainIdFieldEvent | OperationResponseReportChainsBlockHeightFieldEvent | OperationResponseReportChainsMempoolSizeFieldEvent | OperationResponseReportChainsMempoolAtLeastFieldEvent | OperationResponseReportStoreKindFieldEvent | OperationResponseReportStoreDurabilityLevelFieldEvent | OperationResponseReportStoreDurabilityDetailFieldEvent | OperationResponseActionResultActionFieldEvent | OperationResponseActionResultStateFieldEvent | OperationResponseActionResultExitCodeFieldEvent | OperationResponseActionResultDurationMsFieldEvent | OperationResponseActionResultOutputTailFieldEvent | OperationResponseActionResultReasonFieldEvent | OperationResponseActionResultDestructiveFieldEvent | OperationResponseActionResultHealthBeforeFieldEvent | OperationResponseActionResultHealthAfterFieldEvent | OperationResponsePayloadJsonFieldEvent | OperationResponseStatusFieldEvent> {
    return streamMessage(buf, OperationResponse.codec(), opts)
  }
}

export interface ActionResult {
  action: string
  state: string
  exitCode?: number
  durationMs: bigint
  outputTail: string
  reason: string
  destructive: boolean
  healthBefore: string
  healthAfter: string
}

export namespace ActionResult {
  let _codec: Codec<ActionResult>

  export const codec = (): Codec<ActionResult> => {
    if (_codec == null) {
      _codec = message<ActionResult>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.action != null && obj.action !== '')) {
          w.uint32(10)
          w.string(obj.action)
        }

        if ((obj.state != null && obj.state !== '')) {
          w.uint32(18)
          w.string(obj.state)
        }

        if (obj.exitCode != null) {
          w.uint32(24)
          w.sint32(obj.exitCode)
        }

        if ((obj.durationMs != null && obj.durationMs !== 0n)) {
          w.uint32(32)
          w.uint64(obj.durationMs)
        }

        if ((obj.outputTail != null && obj.outputTail !== '')) {
          w.uint32(42)
          w.string(obj.outputTail)
        }

        if ((obj.reason != null && obj.reason !== '')) {
          w.uint32(50)
          w.string(obj.reason)
        }

        if ((obj.destructive != null && obj.destructive !== false)) {
          w.uint32(56)
          w.bool(obj.destructive)
        }

        if ((obj.healthBefore != null && obj.healthBefore !== '')) {
          w.uint32(66)
          w.string(obj.healthBefore)
        }

        if ((obj.healthAfter != null && obj.healthAfter !== '')) {
          w.uint32(74)
          w.string(obj.healthAfter)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          action: '',
          state: '',
          durationMs: 0n,
          outputTail: '',
          reason: '',
          destructive: false,
          healthBefore: '',
          healthAfter: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.action = reader.string()
              break
            }
            case 2: {
              obj.state = reader.string()
              break
            }
            case 3: {
              obj.exitCode = reader.sint32()
              break
            }
            case 4: {
              obj.durationMs = reader.uint64()
              break
            }
            case 5: {
              obj.outputTail = reader.string()
              break
            }
            case 6: {
              obj.reason = reader.string()
              break
            }
            case 7: {
              obj.destructive = reader.bool()
              break
            }
            case 8: {
              obj.healthBefore = reader.string()
              break
            }
            case 9: {
              obj.healthAfter = reader.string()
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
                field: `${prefix}.action`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.state`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.exitCode`,
                value: reader.sint32()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.durationMs`,
                value: reader.uint64()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.outputTail`,
                value: reader.string()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.reason`,
                value: reader.string()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.destructive`,
                value: reader.bool()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.healthBefore`,
                value: reader.string()
              }
              break
            }
            case 9: {
              yield {
                field: `${prefix}.healthAfter`,
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

  export interface ActionResultActionFieldEvent {
    field: '$.action'
    value: string
  }

  export interface ActionResultStateFieldEvent {
    field: '$.state'
    value: string
  }

  export interface ActionResultExitCodeFieldEvent {
    field: '$.exitCode'
    value: number
  }

  export interface ActionResultDurationMsFieldEvent {
    field: '$.durationMs'
    value: bigint
  }

  export interface ActionResultOutputTailFieldEvent {
    field: '$.outputTail'
    value: string
  }

  export interface ActionResultReasonFieldEvent {
    field: '$.reason'
    value: string
  }

  export interface ActionResultDestructiveFieldEvent {
    field: '$.destructive'
    value: boolean
  }

  export interface ActionResultHealthBeforeFieldEvent {
    field: '$.healthBefore'
    value: string
  }

  export interface ActionResultHealthAfterFieldEvent {
    field: '$.healthAfter'
    value: string
  }

  export function encode (obj: Partial<ActionResult>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ActionResult.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ActionResult>): ActionResult {
    return decodeMessage(buf, ActionResult.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ActionResult>): Generator<ActionResultActionFieldEvent | ActionResultStateFieldEvent | ActionResultExitCodeFieldEvent | ActionResultDurationMsFieldEvent | ActionResultOutputTailFieldEvent | ActionResultReasonFieldEvent | ActionResultDestructiveFieldEvent | ActionResultHealthBeforeFieldEvent | ActionResultHealthAfterFieldEvent> {
    return streamMessage(buf, ActionResult.codec(), opts)
  }
}

export interface NodeReport {
  node: string
  role: string
  status: string
  blockHeight?: bigint
  mempoolSize?: bigint
  p2pConnections: number
  serviceUptime?: string
  lastSync?: bigint
  issues: string[]
  checks: HealthCheck[]
  daemonUptimeMs: bigint
  probedAtMs?: bigint
  chains: ChainReading[]
  store?: StoreState
}

export namespace NodeReport {
  let _codec: Codec<NodeReport>

  export const codec = (): Codec<NodeReport> => {
    if (_codec == null) {
      _codec = message<NodeReport>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.node != null && obj.node !== '')) {
          w.uint32(10)
          w.string(obj.node)
        }

        if ((obj.role != null && obj.role !== '')) {
          w.uint32(18)
          w.string(obj.role)
        }

        if ((obj.status != null && obj.status !== '')) {
          w.uint32(26)
          w.string(obj.status)
        }

        if (obj.blockHeight != null) {
          w.uint32(32)
          w.uint64(obj.blockHeight)
        }

        if (obj.mempoolSize != null) {
          w.uint32(40)
          w.uint64(obj.mempoolSize)
        }

        if ((obj.p2pConnections != null && obj.p2pConnections !== 0)) {
          w.uint32(48)
          w.uint32(obj.p2pConnections)
        }

        if (obj.serviceUptime != null) {
          w.uint32(58)
          w.string(obj.serviceUptime)
        }

        if (obj.lastSync != null) {
          w.uint32(64)
          w.uint64(obj.lastSync)
        }

        if (obj.issues != null && obj.issues.length > 0) {
          for (const value of obj.issues) {
            w.uint32(74)
            w.string(value)
          }
        }

        if (obj.checks != null && obj.checks.length > 0) {
          for (const value of obj.checks) {
            w.uint32(82)
            HealthCheck.codec().encode(value, w)
          }
        }

        if ((obj.daemonUptimeMs != null && obj.daemonUptimeMs !== 0n)) {
          w.uint32(88)
          w.uint64(obj.daemonUptimeMs)
        }

        if (obj.probedAtMs != null) {
          w.uint32(96)
          w.uint64(obj.probedAtMs)
        }

        if (obj.chains != null && obj.chains.length > 0) {
          for (const value of obj.chains) {
            w.uint32(106)
            ChainReading.codec().encode(value, w)
          }
        }

        if (obj.store != null) {
          w.uint32(114)
          StoreState.codec().encode(obj.store, w)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          node: '',
          role: '',
          status: '',
          p2pConnections: 0,
          issues: [],
          checks: [],
          daemonUptimeMs: 0n,
          chains: []
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
              obj.role = reader.string()
              break
            }
            case 3: {
              obj.status = reader.string()
              break
            }
            case 4: {
              obj.blockHeight = reader.uint64()
              break
            }
            case 5: {
              obj.mempoolSize = reader.uint64()
              break
            }
            case 6: {
              obj.p2pConnections = reader.uint32()
              break
            }
            case 7: {
              obj.serviceUptime = reader.string()
              break
            }
            case 8: {
              obj.lastSync = reader.uint64()
              break
            }
            case 9: {
              if (opts.limits?.issues != null && obj.issues.length === opts.limits.issues) {
                throw new MaxLengthError('Decode error - repeated field "issues" had too many elements')
              }

              obj.issues.push(reader.string())
              break
            }
            case 10: {
              if (opts.limits?.checks != null && obj.checks.length === opts.limits.checks) {
                throw new MaxLengthError('Decode error - repeated field "checks" had too many elements')
              }

              obj.checks.push(HealthCheck.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.checks$
              }))
              break
            }
            case 11: {
              obj.daemonUptimeMs = reader.uint64()
              break
            }
            case 12: {
              obj.probedAtMs = reader.uint64()
              break
            }
            case 13: {
              if (opts.limits?.chains != null && obj.chains.length === opts.limits.chains) {
                throw new MaxLengthError('Decode error - repeated field "chains" had too many elements')
              }

              obj.chains.push(ChainReading.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.chains$
              }))
              break
            }
            case 14: {
              obj.store = StoreState.codec().decode(reader, reader.uint32(), {
                limits: opts.limits?.store
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
        const obj = {
          issues: 0,
          checks: 0,
          chains: 0
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
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.status`,
                value: reader.string()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.blockHeight`,
                value: reader.uint64()
              }
              break
            }
            case 5: {
              yield {
                field: `${prefix}.mempoolSize`,
                value: reader.uint64()
              }
              break
            }
            case 6: {
              yield {
                field: `${prefix}.p2pConnections`,
                value: reader.uint32()
              }
              break
            }
            case 7: {
              yield {
                field: `${prefix}.serviceUptime`,
                value: reader.string()
              }
              break
            }
            case 8: {
              yield {
                field: `${prefix}.lastSync`,
                value: reader.uint64()
              }
              break
            }
            case 9: {
              if (opts.limits?.issues != null && obj.issues === opts.limits.issues) {
                throw new MaxLengthError('Streaming decode error - repeated field "issues" had too many elements')
              }

              yield {
                field: `${prefix}.issues[]`,
                index: obj.issues,
                value: reader.string()
              }

              obj.issues++

              break
            }
            case 10: {
              if (opts.limits?.checks != null && obj.checks === opts.limits.checks) {
                throw new MaxLengthError('Streaming decode error - repeated field "checks" had too many elements')
              }

              for (const evt of HealthCheck.codec().stream(reader, reader.uint32(), `${prefix}.checks[]`, {
                limits: opts.limits?.checks$
              })) {
                yield {
                  ...evt,
                  index: obj.checks
                }
              }

              obj.checks++

              break
            }
            case 11: {
              yield {
                field: `${prefix}.daemonUptimeMs`,
                value: reader.uint64()
              }
              break
            }
            case 12: {
              yield {
                field: `${prefix}.probedAtMs`,
                value: reader.uint64()
              }
              break
            }
            case 13: {
              if (opts.limits?.chains != null && obj.chains === opts.limits.chains) {
                throw new MaxLengthError('Streaming decode error - repeated field "chains" had too many elements')
              }

              for (const evt of ChainReading.codec().stream(reader, reader.uint32(), `${prefix}.chains[]`, {
                limits: opts.limits?.chains$
              })) {
                yield {
                  ...evt,
                  index: obj.chains
                }
              }

              obj.chains++

              break
            }
            case 14: {
              yield * StoreState.codec().stream(reader, reader.uint32(), `${prefix}.store`, {
                limits: opts.limits?.store
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

  export interface NodeReportNodeFieldEvent {
    field: '$.node'
    value: string
  }

  export interface NodeReportRoleFieldEvent {
    field: '$.role'
    value: string
  }

  export interface NodeReportStatusFieldEvent {
    field: '$.status'
    value: string
  }

  export interface NodeReportBlockHeightFieldEvent {
    field: '$.blockHeight'
    value: bigint
  }

  export interface NodeReportMempoolSizeFieldEvent {
    field: '$.mempoolSize'
    value: bigint
  }

  export interface NodeReportP2pConnectionsFieldEvent {
    field: '$.p2pConnections'
    value: number
  }

  export interface NodeReportServiceUptimeFieldEvent {
    field: '$.serviceUptime'
    value: string
  }

  export interface NodeReportLastSyncFieldEvent {
    field: '$.lastSync'
    value: bigint
  }

  export interface NodeReportIssuesFieldEvent {
    field: '$.issues[]'
    index: number
    value: string
  }

  export interface NodeReportChecksNameFieldEvent {
    field: '$.checks[].name'
    value: string
    index: number
  }

  export interface NodeReportChecksOkFieldEvent {
    field: '$.checks[].ok'
    value: boolean
    index: number
  }

  export interface NodeReportChecksDetailFieldEvent {
    field: '$.checks[].detail'
    value: string
    index: number
  }

  export interface NodeReportChecksStateFieldEvent {
    field: '$.checks[].state'
    value: string
    index: number
  }

  export interface NodeReportDaemonUptimeMsFieldEvent {
    field: '$.daemonUptimeMs'
    value: bigint
  }

  export interface NodeReportProbedAtMsFieldEvent {
    field: '$.probedAtMs'
    value: bigint
  }

  export interface NodeReportChainsChainIdFieldEvent {
    field: '$.chains[].chainId'
    value: string
    index: number
  }

  export interface NodeReportChainsBlockHeightFieldEvent {
    field: '$.chains[].blockHeight'
    value: bigint
    index: number
  }

  export interface NodeReportChainsMempoolSizeFieldEvent {
    field: '$.chains[].mempoolSize'
    value: bigint
    index: number
  }

  export interface NodeReportChainsMempoolAtLeastFieldEvent {
    field: '$.chains[].mempoolAtLeast'
    value: boolean
    index: number
  }

  export interface NodeReportStoreKindFieldEvent {
    field: '$.store.kind'
    value: string
  }

  export interface NodeReportStoreDurabilityLevelFieldEvent {
    field: '$.store.durabilityLevel'
    value: string
  }

  export interface NodeReportStoreDurabilityDetailFieldEvent {
    field: '$.store.durabilityDetail'
    value: string
  }

  export function encode (obj: Partial<NodeReport>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, NodeReport.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeReport>): NodeReport {
    return decodeMessage(buf, NodeReport.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<NodeReport>): Generator<NodeReportNodeFieldEvent | NodeReportRoleFieldEvent | NodeReportStatusFieldEvent | NodeReportBlockHeightFieldEvent | NodeReportMempoolSizeFieldEvent | NodeReportP2pConnectionsFieldEvent | NodeReportServiceUptimeFieldEvent | NodeReportLastSyncFieldEvent | NodeReportIssuesFieldEvent | NodeReportChecksNameFieldEvent | NodeReportChecksOkFieldEvent | NodeReportChecksDetailFieldEvent | NodeReportChecksStateFieldEvent | NodeReportDaemonUptimeMsFieldEvent | NodeReportProbedAtMsFieldEvent | NodeReportChainsChainIdFieldEvent | NodeReportChainsBlockHeightFieldEvent | NodeReportChainsMempoolSizeFieldEvent | NodeReportChainsMempoolAtLeastFieldEvent | NodeReportStoreKindFieldEvent | NodeReportStoreDurabilityLevelFieldEvent | NodeReportStoreDurabilityDetailFieldEvent> {
    return streamMessage(buf, NodeReport.codec(), opts)
  }
}

export interface StoreState {
  kind: string
  durabilityLevel: string
  durabilityDetail: string
}

export namespace StoreState {
  let _codec: Codec<StoreState>

  export const codec = (): Codec<StoreState> => {
    if (_codec == null) {
      _codec = message<StoreState>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.kind != null && obj.kind !== '')) {
          w.uint32(10)
          w.string(obj.kind)
        }

        if ((obj.durabilityLevel != null && obj.durabilityLevel !== '')) {
          w.uint32(18)
          w.string(obj.durabilityLevel)
        }

        if ((obj.durabilityDetail != null && obj.durabilityDetail !== '')) {
          w.uint32(26)
          w.string(obj.durabilityDetail)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          kind: '',
          durabilityLevel: '',
          durabilityDetail: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.kind = reader.string()
              break
            }
            case 2: {
              obj.durabilityLevel = reader.string()
              break
            }
            case 3: {
              obj.durabilityDetail = reader.string()
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
                field: `${prefix}.kind`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.durabilityLevel`,
                value: reader.string()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.durabilityDetail`,
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

  export interface StoreStateKindFieldEvent {
    field: '$.kind'
    value: string
  }

  export interface StoreStateDurabilityLevelFieldEvent {
    field: '$.durabilityLevel'
    value: string
  }

  export interface StoreStateDurabilityDetailFieldEvent {
    field: '$.durabilityDetail'
    value: string
  }

  export function encode (obj: Partial<StoreState>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, StoreState.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StoreState>): StoreState {
    return decodeMessage(buf, StoreState.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<StoreState>): Generator<StoreStateKindFieldEvent | StoreStateDurabilityLevelFieldEvent | StoreStateDurabilityDetailFieldEvent> {
    return streamMessage(buf, StoreState.codec(), opts)
  }
}

export interface ChainReading {
  chainId: string
  blockHeight?: bigint
  mempoolSize?: bigint
  mempoolAtLeast: boolean
}

export namespace ChainReading {
  let _codec: Codec<ChainReading>

  export const codec = (): Codec<ChainReading> => {
    if (_codec == null) {
      _codec = message<ChainReading>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.chainId != null && obj.chainId !== '')) {
          w.uint32(10)
          w.string(obj.chainId)
        }

        if (obj.blockHeight != null) {
          w.uint32(16)
          w.uint64(obj.blockHeight)
        }

        if (obj.mempoolSize != null) {
          w.uint32(24)
          w.uint64(obj.mempoolSize)
        }

        if ((obj.mempoolAtLeast != null && obj.mempoolAtLeast !== false)) {
          w.uint32(32)
          w.bool(obj.mempoolAtLeast)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          chainId: '',
          mempoolAtLeast: false
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.chainId = reader.string()
              break
            }
            case 2: {
              obj.blockHeight = reader.uint64()
              break
            }
            case 3: {
              obj.mempoolSize = reader.uint64()
              break
            }
            case 4: {
              obj.mempoolAtLeast = reader.bool()
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
                field: `${prefix}.chainId`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.blockHeight`,
                value: reader.uint64()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.mempoolSize`,
                value: reader.uint64()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.mempoolAtLeast`,
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

  export interface ChainReadingChainIdFieldEvent {
    field: '$.chainId'
    value: string
  }

  export interface ChainReadingBlockHeightFieldEvent {
    field: '$.blockHeight'
    value: bigint
  }

  export interface ChainReadingMempoolSizeFieldEvent {
    field: '$.mempoolSize'
    value: bigint
  }

  export interface ChainReadingMempoolAtLeastFieldEvent {
    field: '$.mempoolAtLeast'
    value: boolean
  }

  export function encode (obj: Partial<ChainReading>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, ChainReading.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChainReading>): ChainReading {
    return decodeMessage(buf, ChainReading.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<ChainReading>): Generator<ChainReadingChainIdFieldEvent | ChainReadingBlockHeightFieldEvent | ChainReadingMempoolSizeFieldEvent | ChainReadingMempoolAtLeastFieldEvent> {
    return streamMessage(buf, ChainReading.codec(), opts)
  }
}

export interface HealthCheck {
  name: string
  ok: boolean
  detail: string
  state: string
}

export namespace HealthCheck {
  let _codec: Codec<HealthCheck>

  export const codec = (): Codec<HealthCheck> => {
    if (_codec == null) {
      _codec = message<HealthCheck>((obj, w, opts = {}) => {
        if (opts.lengthDelimited !== false) {
          w.fork()
        }

        if ((obj.name != null && obj.name !== '')) {
          w.uint32(10)
          w.string(obj.name)
        }

        if ((obj.ok != null && obj.ok !== false)) {
          w.uint32(16)
          w.bool(obj.ok)
        }

        if ((obj.detail != null && obj.detail !== '')) {
          w.uint32(26)
          w.string(obj.detail)
        }

        if ((obj.state != null && obj.state !== '')) {
          w.uint32(34)
          w.string(obj.state)
        }

        if (opts.lengthDelimited !== false) {
          w.ldelim()
        }
      }, (reader, length, opts = {}) => {
        const obj: any = {
          name: '',
          ok: false,
          detail: '',
          state: ''
        }

        const end = length == null ? reader.len : reader.pos + length

        while (reader.pos < end) {
          const tag = reader.uint32()

          switch (tag >>> 3) {
            case 1: {
              obj.name = reader.string()
              break
            }
            case 2: {
              obj.ok = reader.bool()
              break
            }
            case 3: {
              obj.detail = reader.string()
              break
            }
            case 4: {
              obj.state = reader.string()
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
                field: `${prefix}.name`,
                value: reader.string()
              }
              break
            }
            case 2: {
              yield {
                field: `${prefix}.ok`,
                value: reader.bool()
              }
              break
            }
            case 3: {
              yield {
                field: `${prefix}.detail`,
                value: reader.string()
              }
              break
            }
            case 4: {
              yield {
                field: `${prefix}.state`,
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

  export interface HealthCheckNameFieldEvent {
    field: '$.name'
    value: string
  }

  export interface HealthCheckOkFieldEvent {
    field: '$.ok'
    value: boolean
  }

  export interface HealthCheckDetailFieldEvent {
    field: '$.detail'
    value: string
  }

  export interface HealthCheckStateFieldEvent {
    field: '$.state'
    value: string
  }

  export function encode (obj: Partial<HealthCheck>): Uint8Array<ArrayBuffer> {
    return encodeMessage(obj, HealthCheck.codec())
  }

  export function decode (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HealthCheck>): HealthCheck {
    return decodeMessage(buf, HealthCheck.codec(), opts)
  }

  export function stream (buf: Uint8Array | Uint8ArrayList, opts?: DecodeOptions<HealthCheck>): Generator<HealthCheckNameFieldEvent | HealthCheckOkFieldEvent | HealthCheckDetailFieldEvent | HealthCheckStateFieldEvent> {
    return streamMessage(buf, HealthCheck.codec(), opts)
  }
}
