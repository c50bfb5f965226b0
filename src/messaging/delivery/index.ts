export { MessageDelivery, type DeliveryOutbox, type MessageDeliveryInit } from './service.js'
export { MESSAGES_PROTOCOL, DEFAULT_DELIVERY_LIMITS, type DeliveryConnection, type DeliveryLimits, type DeliveryNetwork } from './protocol.js'
export * from './errors.js'
