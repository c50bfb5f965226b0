/**
 * The daemon's optional HTTP side (`http:` in the config): metrics, health and the status page.
 * Loaded with a dynamic import only when configured, so prom-client and the page stay out of a
 * daemon that does not serve HTTP.
 */
export { HttpService, type HttpServiceInit, type HttpSource } from './server.js'
export type { StatusSnapshot, StatusSource } from './status.js'
