/** Limits and defaults in one place; every service takes its values from here. */

export const RESERVED_TARGET_NAMES = ['all', 'genesis', 'follower'] as const

export const DEFAULT_CONFIG_PATH = '/etc/aitbc/mesh.yaml'
export const DEFAULT_SOCKET_PATH = '/run/aitbc/mesh.sock'
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/7070'
export const DEFAULT_PORT = 7070
export const CONFIG_FILE_NAME = 'mesh.yaml'
export const IDENTITY_FILE_NAME = 'identity.key'
export const SWARM_KEY_FILE_NAME = 'swarm.key'
export const CONTROL_SOCKET_FILE_NAME = 'mesh.sock'

/** Heartbeats and liveness. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1000
/** A node is offline when no heartbeat arrived for this many intervals. */
export const OFFLINE_AFTER_INTERVALS = 3
/**
 * After the direct connection to a node closes, a heartbeat relayed by another node proves the
 * node alive only if it was sent after the close: one sent before it can still be queued at a
 * busy relay and arrive hundreds of milliseconds later. Its send time is read on our clock with
 * the sender's offset, the least (arrival - send) over its recent heartbeats on the direct
 * connection (clock skew plus the least transit); a few samples, so a clock step is followed
 * within seconds.
 */
export const CLOCK_OFFSET_SAMPLES = 8
/**
 * A heartbeat counts as sent after the close only if it was sent this much later: room for the
 * offset's error (its least transit is from calmer moments than the crash's).
 */
export const SENT_AFTER_CLOSE_MARGIN_MS = 100
/**
 * Without an offset (no heartbeat came over the direct connection yet), by arrival: one arriving
 * this long after the close (earlier ones may have been in flight).
 */
export const RELAYED_HEARTBEAT_GRACE_MS = 250
/**
 * How often the membership view re-reads liveness to notice a quorum change without a reader:
 * a fraction of the offline window, so `quorum_changed` is logged close to when it happened.
 */
export const MEMBERSHIP_CHECK_INTERVAL_MS = 250
/**
 * Agent changes already logged as superseded (`agent_change_superseded`), remembered so that
 * anti-entropy re-sending the same losing change does not log it again; oldest forgotten first.
 */
export const SUPERSEDED_LOG_MEMORY = 1024
/**
 * This daemon's own event-loop stalls stretch the offline window (LocalStallMonitor): sampled this
 * often; stalls shorter than the minimum are ignored (they are far below the window); and the
 * stretch is capped, so peers silent for longer than window + cap go offline however slow we are.
 */
export const LOCAL_STALL_SAMPLE_MS = 100
export const LOCAL_STALL_MIN_MS = 50
export const LOCAL_STALL_MAX_ALLOWANCE_MS = 10_000
/** An extra heartbeat for peers that just subscribed comes at least this fraction of an interval after the last one. */
export const HEARTBEAT_PROMPT_MIN_GAP = 0.25
/** Largest heartbeat sent or accepted: a heartbeat is a few numbers and a list of names. */
export const HEARTBEAT_MAX_BYTES = 512
/**
 * Names in a heartbeat's `connected` list; the sender leaves out more, the receiver refuses more.
 * An AITBC mesh is a handful of nodes, and 512 bytes hold about 50 names anyway.
 */
export const HEARTBEAT_MAX_CONNECTED = 64

/**
 * Gossipsub mesh degree D (gossipsub's default): each node forwards a message to about D peers
 * and receives about D copies of it; lower trades redundancy for bytes and CPU in large meshes.
 */
export const DEFAULT_GOSSIP_MESH_DEGREE = 6
export const MIN_GOSSIP_MESH_DEGREE = 2
export const MAX_GOSSIP_MESH_DEGREE = 16
/** Largest gossipsub RPC taken from one peer: heartbeats and agent changes are small. */
export const GOSSIP_MAX_INBOUND_BYTES = 1024 * 1024
/**
 * Messages from this size on are announced to mesh peers with IDONTWANT (gossipsub 1.2). For the
 * mesh's small messages an IDONTWANT costs about as much as the duplicate it saves, and it goes to
 * every mesh peer: gossipsub's 512 bytes would catch a heartbeat listing ~50 peers and add D frames
 * per heartbeat at every node.
 */
export const GOSSIP_IDONTWANT_MIN_BYTES = 16 * 1024

/**
 * libp2p's connection limits, scaled with the mesh (createMeshLibp2p says why): never below
 * libp2p's own defaults; room for a connection each way to every node, and some to spare.
 */
export const LIBP2P_MIN_MAX_CONNECTIONS = 300
export const CONNECTIONS_PER_MESH_NODE = 4
export const LIBP2P_MIN_PENDING_INBOUND = 10
export const LIBP2P_MIN_INBOUND_PER_HOST_PER_S = 5

/** Outbound dials of the peer connector in progress at once; the rest wait their turn (PeerConnector.turn says why). */
export const PEER_DIALS_AT_ONCE = 4
/** Redialling configured peers: exponential backoff with jitter, never giving up. */
export const REDIAL_INITIAL_DELAY_MS = 200
export const REDIAL_MAX_DELAY_MS = 5000
/**
 * A whole dial: TCP connect plus the Noise and Yamux handshakes (libp2p's default). A shorter one
 * gave up on handshakes that were merely slow while a whole mesh started on busy machines, throwing
 * away the work of both ends and trying again, which kept the machines busy.
 */
export const DIAL_TIMEOUT_MS = 10_000
/** A connection that stayed up this long resets the redial backoff. */
export const STABLE_CONNECTION_MS = 2000

/** Operations. */
export const OPERATION_DEFAULT_TIMEOUT_S = 60
export const OPERATION_MAX_TIMEOUT_S = 120
export const OPERATION_STREAM_MAX_MESSAGE_BYTES = 256 * 1024
export const OPERATION_MAX_INBOUND_STREAMS = 64
export const OPERATION_MAX_OUTBOUND_STREAMS = 256
/**
 * Each step of an operation exchange has its own bound, so a peer that stalls one step is named
 * for it. Opening the stream: a dial is bounded by DIAL_TIMEOUT_MS, and a peer that cannot give
 * a stream in this time is unreachable rather than slow.
 */
export const OPERATION_DIAL_TIMEOUT_MS = 10_000
/** Writing one frame (at most OPERATION_STREAM_MAX_MESSAGE_BYTES): a peer that has not taken it in this time is not reading. */
export const OPERATION_WRITE_TIMEOUT_MS = 10_000
/** How long a responder waits for the request once the stream opens (it is sent with the stream). */
export const OPERATION_REQUEST_READ_TIMEOUT_MS = 5000
/**
 * An action or sync step runs for up to the request's timeout on the target; its answer then
 * still has to travel back, so the requester waits this much longer for it.
 */
export const OPERATION_ANSWER_GRACE_MS = 5000
/** Closing a stream after the exchange waits for the remote's half of the close at most this long. */
export const OPERATION_CLOSE_TIMEOUT_MS = 5000
/** A responder holds a requested timeout to this range: no work is cut at once, none runs longer than an operation may. */
export const OPERATION_MIN_REMOTE_TIMEOUT_MS = 100
export const OPERATION_MAX_REMOTE_TIMEOUT_MS = OPERATION_MAX_TIMEOUT_S * 1000
/** A peer's report: at most this many issues and checks are read, each text clipped to this length (what a table can show). */
export const OPERATION_REPORT_MAX_ISSUES = 64
export const OPERATION_REPORT_MAX_CHECKS = 64
export const OPERATION_REPORT_MAX_TEXT = 2048
/** service_uptime is short ("5d 12h 34m"); the SSH fallback holds it to the same length. */
export const OPERATION_REPORT_MAX_UPTIME_CHARS = 64
/** Of an action's output, the last this many characters of a peer's answer are kept (twice what a target sends). */
export const OPERATION_ACTION_OUTPUT_MAX_CHARS = 8192
/** An action's reported duration may exceed our own measure of the exchange by this much (rounding). */
export const OPERATION_DURATION_TOLERANCE_MS = 1000
/** The health reports a sync starts with: a slow target must not spend the time the sync steps need. */
export const SYNC_REPORT_TIMEOUT_MS = 10_000
/** The SSH fallback's whole exchange (connect, run `aitbc-mesh probe`, read its JSON). */
export const SSH_FALLBACK_TIMEOUT_MS = 15_000
/** What `aitbc-mesh probe` prints over SSH is one report; more than this is not one. */
export const SSH_FALLBACK_MAX_OUTPUT_BYTES = 256 * 1024
/**
 * A message operation waits for its TTL (its timeout), then this much more: targets still
 * pending at the TTL are marked expired by the next sweep (MESSAGE_EXPIRY_SWEEP_MS).
 */
export const MESSAGE_OPERATION_SETTLE_MS = 1000
/** Operation request ids as the requester makes them (a UUID); echoed in the answer and logged. */
export const OPERATION_REQUEST_ID_PATTERN = /^[\w-]{1,64}$/
/**
 * Probes of the AITBC blockchain RPC. The RPC allows about AITBC_RPC_RATE_LIMIT_PER_MINUTE calls
 * per minute per client IP and handler (/rpc/head, /rpc/mempool and /health each count apart),
 * then answers HTTP 429; every local client on 127.0.0.1 (CLI, scripts, the sync service) shares
 * that budget with us. One probe makes 1 call to /health and, per chain, 1 to /rpc/head and 1 to
 * /rpc/mempool: per handler, chains x 60000 / probes.intervalMs calls a minute. At the default of
 * 5 s that is 12 a minute per chain (6% of the limit); a config whose interval alone would make
 * more than PROBE_RPC_BUDGET_PER_MINUTE is refused at load. Health probes use what is left.
 */
export const AITBC_RPC_RATE_LIMIT_PER_MINUTE = 200
/** Our share of the RPC's per-handler limit, worst case (30%): the rest stays for other local clients. */
export const PROBE_RPC_BUDGET_PER_MINUTE = 60
export const DEFAULT_PROBE_INTERVAL_MS = 5000
export const MIN_PROBE_INTERVAL_MS = 1000
export const MAX_PROBE_INTERVAL_MS = 600_000
/**
 * Health probes afresh while the probes' calls in the last minute leave room in
 * PROBE_RPC_BUDGET_PER_MINUTE after the periodic probes' share; beyond that (a burst of health
 * requests: an operator's `watch`, a sync verifying every 500 ms) it answers from the last probe,
 * at most one interval old, and says when that probe ran. At the default interval, health may
 * probe 48 times a minute.
 */
export const PROBE_BUDGET_WINDOW_MS = 60_000
/** Status answers from the last probe; older than this many intervals it is reported stale (degraded). */
export const PROBE_STALE_AFTER_INTERVALS = 3
/**
 * Before a chain's first block /rpc/head answers 404 and the RPC logs a warning for each call:
 * the periodic probe then asks again after a delay doubling from the interval up to this
 * (1,440 lines a day at most instead of one per probe); health still asks each time.
 */
export const NO_BLOCK_RECHECK_MAX_MS = 60_000
/**
 * After HTTP 429 the RPC is not called until its Retry-After has passed (capped here, so a
 * wrong header cannot silence the probes for a day); without the header, for a delay doubling
 * from the interval up to RATE_LIMIT_MAX_BACKOFF_MS (AITBC's window is a minute).
 */
export const RATE_LIMIT_MAX_BACKOFF_MS = 60_000
export const RATE_LIMIT_MAX_RETRY_AFTER_MS = 300_000
/**
 * `GET /rpc/mempool` has no count-only form: it returns up to `limit` pending transactions with
 * their payloads and counts those. Asking for at most this many keeps each probe small; a count
 * that reaches it is reported as "at least N" (mempool_at_least in the chain's entry).
 */
export const MEMPOOL_PROBE_LIMIT = 500
/** Chains one node probes (probes.chainId as a list) and a report may carry. */
export const MAX_PROBE_CHAINS = 8
/** AITBC chain ids such as ait-devnet, ait-mainnet. */
export const CHAIN_ID_PATTERN = /^[A-Za-z0-9][\w.-]{0,63}$/
export const PROBE_HTTP_TIMEOUT_MS = 2000
/** A probe's HTTP answer is a small JSON body (mempool: at most MEMPOOL_PROBE_LIMIT entries); more is refused, not buffered. */
export const PROBE_HTTP_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
/** Redirects a probe follows, as fetch did (it follows up to 20); an RPC behind a proxy needs one or two. */
export const PROBE_HTTP_MAX_REDIRECTS = 5
export const PROBE_COMMAND_TIMEOUT_MS = 3000
/** systemd units one node probes (probes.service plus probes.services). */
export const MAX_PROBE_SERVICES = 8
/** Today's AITBC layout: the RPC on 127.0.0.1:8202 in its own unit, beside the node's unit. */
export const DEFAULT_AITBC_RPC_URL = 'http://127.0.0.1:8202'
export const AITBC_NODE_UNIT = 'aitbc-blockchain-node.service'
export const AITBC_RPC_UNIT = 'aitbc-blockchain-rpc.service'

/** Control socket. */
export const CONTROL_MAX_REQUEST_BYTES = 1024 * 1024
/**
 * Connections open at once. One more is answered with an error line saying so and closed; past
 * twice this many (refused ones linger briefly) the kernel's connection is dropped unanswered.
 */
export const CONTROL_MAX_CONNECTIONS = 64
/**
 * Answers and events waiting to be sent on one connection before the daemon stops reading its
 * requests (it resumes once they are sent): a client that writes and never reads cannot make
 * the daemon hold its answers.
 */
export const CONTROL_MAX_UNSENT_BYTES = 1024 * 1024
/**
 * Requests of one connection running at once (streams and operations waiting in line included);
 * further lines wait, read up to CONTROL_MAX_REQUEST_BYTES so a disconnect is still seen. Above
 * the 2000 sends a pipelining client keeps outstanding in the messages benchmark.
 */
export const CONTROL_MAX_REQUESTS_IN_FLIGHT = 4096
/**
 * A request counts against CONTROL_MAX_UNSENT_BYTES from its dispatch, at the size its method's
 * answers have had (the largest, decaying slowly); a method not answered yet counts this much.
 * Without it, one read of small requests asking for large answers could queue them all.
 */
export const CONTROL_UNKNOWN_ANSWER_BYTES = 64 * 1024
/**
 * A connection this far behind reading is closed: streams (watch, follow) produce events whether
 * or not the client reads, and stopping reading does not stop them.
 */
export const CONTROL_MAX_UNREAD_BYTES = 64 * 1024 * 1024
/**
 * A connection with nothing read or sent for this long is closed, unless a request is running
 * and everything has been sent (a quiet stream): 64 forgotten connections would lock out the CLI.
 */
export const CONTROL_IDLE_TIMEOUT_MS = 60_000
/** A request line must be complete this long after its first byte arrived (a program writes it at once). */
export const CONTROL_PARTIAL_LINE_TIMEOUT_MS = 10_000
/** A connection closed with an error line gets this long to read it before the daemon cuts it. */
export const CONTROL_CLOSE_LINGER_MS = 1000
export const CONTROL_SOCKET_MODE = 0o660

/** Closing the connections of a peer removed by a config reload. */
export const HANG_UP_TIMEOUT_MS = 2000

/** Shutdown: every step is bounded, the whole stop too. */
export const SHUTDOWN_STEP_TIMEOUT_MS = 1500
export const SHUTDOWN_TOTAL_TIMEOUT_MS = 4500

/** Ping used for the latency column of `peers`. */
export const PEER_PING_TIMEOUT_MS = 1000
export const PEER_LATENCY_REUSE_MS = 2000
/**
 * Connections without a heartbeat over them for SILENT_CONNECTION_WINDOWS offline windows are
 * pinged this often, and closed when the ping gets no answer in time (SilentConnectionCloser): a
 * dead link is closed about 2 windows + check + timeout after it went silent.
 */
export const SILENT_CONNECTION_CHECK_MS = 2000
/** Offline windows without a heartbeat over the connection before it is pinged: one heartbeat late under load is not enough. */
export const SILENT_CONNECTION_WINDOWS = 2
export const SILENT_CONNECTION_PING_TIMEOUT_MS = 3000

/** A node whose height trails the highest heartbeating peer by more than this is degraded (AITBC's bulk-sync trigger). */
export const LAG_THRESHOLD_BLOCKS = 100

/**
 * Node flags for the daemon process (also in the CLI's shebang, the systemd unit and npm start).
 * A small young generation keeps idle RSS low; V8 otherwise grows it to 16 MiB per semi-space
 * after a burst and keeps it. A 1 GiB old generation (about 30 MiB is live at idle; the daemon's
 * queues and caches are bounded) caps how far V8 lets the heap grow past its live size: with the
 * default limit (4 GiB on a large host) it sets the next limit at 4x the live size while the
 * modules load, and the pages it fills then stay. Measured: 6-8 MiB less idle RSS, status p50/p99
 * unchanged within the noise; the price is more frequent collections, about 5% more CPU per
 * status call and 20 ms more CPU to start. (2 GiB already allows the 4x growth: no saving.)
 */
export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=2', '--max-old-space-size=1024']
/**
 * Environment for the daemon process (also in the CLI's shebang, the systemd unit and npm start).
 * glibc gives each thread that allocates (V8's workers, libuv's pool) its own malloc arena of
 * which little is in use at idle; two arenas for the whole process measured 4-5 MiB less idle RSS.
 */
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }

/** Store. */
export const EMBEDDED_STORE_FILE_NAME = 'store.sqlite'
/**
 * Written next to the embedded store once it exists: from then on a missing, empty or damaged
 * store.sqlite is refused at start instead of silently replaced by an empty one.
 */
export const EMBEDDED_STORE_MARKER_FILE_NAME = 'store.id'
/** Rows of `PRAGMA quick_check` read at start: the first few name the damage well enough. */
export const EMBEDDED_STORE_CHECK_MAX_ERRORS = 3
/** Databases 0-15: Redis's default `databases 16`; a typo such as /22 for /2 is caught at load, not at every SELECT. */
export const REDIS_MAX_DB_INDEX = 15
export const REDIS_CONNECT_TIMEOUT_MS = 2000
export const REDIS_COMMAND_TIMEOUT_MS = 2000
export const REDIS_MAX_RETRY_DELAY_MS = 2000
/**
 * Closing the Redis connection: how long ioredis waits for it to close before destroying it. It
 * starts this timer even when the connection is already down (between retries) and nothing clears
 * it then, so it also delays the exit of a daemon whose start failed; a local Redis closes in ms.
 */
export const REDIS_DISCONNECT_TIMEOUT_MS = 200

/**
 * Group commit writes at most this many records per transaction, then yields: a transaction of
 * the thousands of messages a full delivery window brings held the event loop for 100-340 ms.
 */
export const STORE_WRITE_MAX_KEYS = 256

/** Embedded store: expired keys are deleted this often, at most this many rows a time (a few ms). */
export const EMBEDDED_EXPIRY_SWEEP_MS = 5000
export const EMBEDDED_EXPIRY_SWEEP_BATCH = 1000
/** Closing the embedded store: the writer thread commits what it was sent, within this bound. */
export const EMBEDDED_WRITER_CLOSE_TIMEOUT_MS = 5000

/**
 * What a store that can lose acknowledged writes (Redis without an fsynced append-only file, or
 * whose settings cannot be read) does to the node: `degraded` runs and says so in status,
 * `/health`, the log and `doctor`. Not `refuse`, because a Redis restart's loss is given back
 * by the peers (senders keep delivered messages for retention.sent and resend them to a node
 * whose store lost them), so refusing would turn a setting into an outage.
 */
export const STORE_DURABILITY_MODES = ['refuse', 'degraded', 'accept'] as const
export const DEFAULT_STORE_DURABILITY = 'degraded'
/**
 * Levels that count as durable. `always` loses nothing acknowledged; `everysec` loses nothing on
 * a crash of Redis and about a second on a crash of the host, which the peers give back (a
 * sender keeps what it sent for retention.sent). `os`, `snapshot`, `none` can lose far more, and
 * `unknown` promises nothing.
 */
export const DURABLE_STORE_LEVELS = ['always', 'everysec'] as const
/** The store's persistence settings are read again this often, so a runtime CONFIG SET is seen. */
export const STORE_DURABILITY_RECHECK_MS = 60_000
/**
 * The store epoch's marked_at is rewritten this often (one small write): a store restored from
 * an older snapshot or append-only file shows a mark older than the last one written, so the
 * loss is known to within this much.
 */
export const STORE_MARK_INTERVAL_MS = 1000

/**
 * Retention. Inbox: what a consumer reading with `inbox --since` can still fetch. Sent: records
 * of messages whose targets all ended, and the bodies a receiver that lost its store gets back.
 * Operations: `aitbc-mesh ops` history. Dedupe ids are kept until the message expires (a retry
 * after that is refused as expired anyway); agent tombstones for AGENT_TOMBSTONE_RETENTION_MS.
 */
export const DEFAULT_INBOX_RETENTION_S = 7 * 24 * 3600
export const DEFAULT_INBOX_RETENTION_COUNT = 100_000
export const DEFAULT_SENT_RETENTION_S = 7 * 24 * 3600
export const DEFAULT_SENT_RETENTION_COUNT = 100_000
export const DEFAULT_OPERATION_RETENTION_S = 30 * 24 * 3600
export const DEFAULT_OPERATION_RETENTION_COUNT = 1000
/** Retention may be set this short (tests, small disks) and no shorter. */
export const MIN_RETENTION_S = 1
/**
 * Pruning deletes at most this many entries per store write, then yields to other work. Measured
 * on Redis: 500 a write paused the event loop up to 40-76 ms, 200 up to 15-27 ms, for the same CPU.
 */
export const RETENTION_PRUNE_BATCH = 200
/**
 * Sent retention reads the index this many entries a time (and deletes them RETENTION_PRUNE_BATCH
 * a write): a sender busy sending gives each await a whole turn of its event loop, so fewer reads
 * let pruning keep up with a sustained few thousand messages a second.
 */
export const SENT_PRUNE_PAGE = 1000
/** How often each retention pass runs: at a sustained few thousand messages a second, what arrives between passes is what retention lets through above its limit. */
export const RETENTION_PRUNE_INTERVAL_MS = 1000
/** A legacy list (from before the indexes) is counted this many ids a read, once, when its migration begins. */
export const LEGACY_LIST_COUNT_PAGE = 10_000
/** Background store work (loading where the inbox stands, migrations) retries this often while the store is away. */
export const STORE_RETRY_MS = 200
/** `inbox --follow` replays what is already stored in pages of this many messages. */
export const INBOX_REPLAY_PAGE = 1000

/** Agent registry (AITBC coordinator rules). */
/** The coordinator's default chain: agents registered without one are filed under it. */
export const DEFAULT_AGENT_CHAIN_ID = 'ait-hub'
export const DEFAULT_AGENT_ISLAND_ID = 'default'
export const AGENT_INACTIVE_AFTER_S = 120
export const AGENT_REMOVE_AFTER_INACTIVE_S = 3600
export const MAX_AGENT_RECORD_BYTES = 64 * 1024
/** Removals are remembered this long, so a node that was away cannot bring a removed agent back. */
export const AGENT_TOMBSTONE_RETENTION_MS = 7 * 24 * 3600 * 1000
export const AGENT_SWEEP_INTERVAL_MS = 5000
/** The Redis channel the AITBC coordinator publishes agent_registered/status_updated/unregistered on. */
export const COORDINATOR_EVENTS_CHANNEL = 'agent_events'
/** Coordinator events waiting to be imported; beyond this they are dropped and the next store sync finds the records. */
export const COORDINATOR_IMPORT_MAX_QUEUE = 10_000
/** The coordinator's SETEX time for `agent:{id}`; the mesh writes its records with the same TTL. */
export const COORDINATOR_RECORD_TTL_S = 24 * 3600
export const ANTI_ENTROPY_INTERVAL_MS = 15000
export const MIN_ANTI_ENTROPY_INTERVAL_MS = 1000
export const MAX_ANTI_ENTROPY_INTERVAL_MS = 3600_000
export const ANTI_ENTROPY_TIMEOUT_MS = 10000
/** One anti-entropy message: digest, response or push (a 64 KiB record fits many times over). */
export const ANTI_ENTROPY_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
/**
 * Entries one digest may carry. Ten times any AITBC deployment's agent count; a peer's larger
 * digest is refused before it is decoded further, so it cannot make us allocate for it.
 */
export const ANTI_ENTROPY_MAX_DIGEST_ENTRIES = 20_000
/** Anti-entropy exchanges at once with one peer, each way. */
export const ANTI_ENTROPY_MAX_STREAMS = 8
/** Updates (and wanted ids) one anti-entropy response or push carries; the rest follow in another round. */
export const ANTI_ENTROPY_MAX_UPDATES = 1000
/** Bytes of records one response or push carries, below the message limit with room for framing. */
export const ANTI_ENTROPY_MAX_UPDATE_BYTES = 6 * 1024 * 1024
/** Same-millisecond changes one clock stamp may count; far above any real rate, far below uint32. */
export const AGENT_CLOCK_MAX_COUNTER = 1_000_000_000
/** Agent ids in one gossip update and digest entry. */
export const AGENT_ID_MAX_LENGTH = 128

/**
 * The AITBC agent coordinator (apps/agent-coordinator, `src/agent_app/`), as its source has it.
 * Requests per minute and client address each `/v1` route allows (`@rate_limit(rate=N, per=60)`);
 * more are answered 429. It has no unregister route: `unregister` is what the export assumes for
 * `DELETE /v1/agents/{id}` should one appear (it falls back when answered 405).
 */
export const COORDINATOR_RATE_LIMITS_PER_MIN = { register: 50, status: 50, heartbeat: 100, lookup: 200, unregister: 50 } as const
/** The coordinator's agent types (`AgentType`); it refuses a registration of any other (422). */
export const COORDINATOR_AGENT_TYPES = ['coordinator', 'worker', 'specialist', 'monitor', 'gateway', 'orchestrator'] as const
/** It marks an agent inactive once its last heartbeat is older than this (its monitor wakes every 30 s). */
export const COORDINATOR_INACTIVE_AFTER_MS = AGENT_INACTIVE_AFTER_S * 1000
export const DEFAULT_COORDINATOR_INACTIVE_AFTER_S = AGENT_INACTIVE_AFTER_S

/** Export of other nodes' agents into the coordinator through its API (`coordinator.url`). */
/**
 * Share of each of the coordinator's limits the export uses, paced evenly with a burst of the
 * rest, so no 60 s window ever exceeds the limit. The limits are per client address: the hub's
 * own agents, calling from the same host, share them, so a fifth is left to them.
 */
export const EXPORT_RATE_SHARE = 0.8
/**
 * Each live remote agent is touched (heartbeat, or status update) at least this often: at this
 * share of the coordinator's inactivity window (coordinator.inactiveAfterS), 90 s of its 120 s,
 * room for a Retry-After or a failed attempt and a retry.
 */
export const EXPORT_KEEPALIVE_SHARE = 0.75
export const EXPORT_KEEPALIVE_INTERVAL_MS = COORDINATOR_INACTIVE_AFTER_MS * EXPORT_KEEPALIVE_SHARE
/**
 * Live remote agents the export can keep live: one heartbeat each per keepalive interval at its
 * share of the heartbeat limit, 100 x 0.8 per minute x 1.5 min = 120. Beyond it the most recently
 * active are kept live and the rest show inactive in the coordinator (a warning says so, once).
 */
export const EXPORT_MAX_LIVE_AGENTS = Math.floor(COORDINATOR_RATE_LIMITS_PER_MIN.heartbeat * EXPORT_RATE_SHARE * EXPORT_KEEPALIVE_INTERVAL_MS / 60_000)
/**
 * Besides those, live remote agents that are busy, in maintenance or in error: their keepalive is
 * a status update (the coordinator's heartbeat sets an agent active), which may use half the
 * export's share of the status limit, the other half left for changes: 50 x 0.8 / 2 a minute x
 * 1.5 min = 30.
 */
export const EXPORT_MAX_LIVE_NON_ACTIVE_AGENTS = Math.floor(COORDINATOR_RATE_LIMITS_PER_MIN.status * EXPORT_RATE_SHARE / 2 * EXPORT_KEEPALIVE_INTERVAL_MS / 60_000)
/** How often the export compares the registry with what it pushed (derived status, expiry, keepalives due). */
export const EXPORT_RECONCILE_INTERVAL_MS = 1000
/** One request to the coordinator, connect to last byte. */
export const EXPORT_REQUEST_TIMEOUT_MS = 5000
/** Requests in flight at once (one per agent at most). */
export const EXPORT_MAX_IN_FLIGHT = 4
/** Retries after a 5xx (per agent) or an unreachable coordinator (all agents): exponential, jittered. */
export const EXPORT_RETRY_INITIAL_MS = 500
export const EXPORT_RETRY_MAX_MS = 30_000
/** A 429 without Retry-After pauses that route this long; a Retry-After above the maximum is cut to it. */
export const EXPORT_RETRY_AFTER_DEFAULT_MS = 10_000
export const EXPORT_RETRY_AFTER_MAX_MS = 120_000
/** Largest coordinator answer read (an agent record is at most 64 KiB). */
export const EXPORT_MAX_RESPONSE_BYTES = 1024 * 1024

/** Trust: bounds on what peers send. */
/**
 * Wire timestamps (clock stamps, heartbeat and message times) further than this from our clock
 * are refused. NTP keeps hosts within milliseconds; a minute leaves room for a host whose time
 * source hiccupped without letting a peer stamp a change far into the future.
 */
export const DEFAULT_TRUST_CLOCK_SKEW_MS = 60_000
/** Who may remove agents owned by other nodes (besides each owner itself): the hub. */
export const DEFAULT_REMOVALS_FROM = ['genesis'] as const
/**
 * Who may run a destructive action (`actions.<name>.allowFrom` unset) or ask for a forced sync
 * step (`sync.forceFrom` unset): the genesis node, which the mesh follows, and this node's own
 * operator through the control socket. A follower cannot reset or restart another follower.
 */
export const DEFAULT_DESTRUCTIVE_FROM = ['genesis', 'self'] as const
export const DEFAULT_FORCE_FROM = ['genesis', 'self'] as const
/**
 * A daemon run longer than this (a heartbeat's started_at, a report's daemon uptime) is a wrong
 * clock or a forged stamp: hosts are rebooted for kernel updates far more often.
 */
export const MAX_PLAUSIBLE_UPTIME_MS = 10 * 365 * 24 * 3600 * 1000
/**
 * Peer counts on the wire (heartbeat and report p2p_connections): the gater admits only the
 * allowlist, which is a handful of nodes; anything above this is not a count of real peers.
 */
export const MAX_WIRE_PEER_COUNT = 1024
/** A peer's rejected inputs are logged once per reason, then summarised at most this often. */
export const REJECTION_LOG_INTERVAL_MS = 60_000
/** Distinct (peer, reason) pairs the rejection log remembers; the oldest is forgotten first. */
export const REJECTION_LOG_MAX_KEYS = 1024

/** Coordination messages. */
export const MESSAGE_MAX_BODY_BYTES = 64 * 1024
export const MESSAGE_DEFAULT_TTL_S = 3600
export const MESSAGE_MAX_TTL_S = 7 * 24 * 3600
/** Message ids and kinds as the sender makes them (a UUID; the kind as `send --kind` accepts it). */
export const MESSAGE_ID_PATTERN = /^[\w-]{1,64}$/
export const MESSAGE_KIND_PATTERN = /^[\w.:-]{1,64}$/
/** A routed message's agent (Envelope.agent): an agent id as the registry accepts it. */
export const MESSAGE_AGENT_PATTERN = /^[\w.:@-]{1,128}$/
/** A receipt's reason from a target is kept and shown up to this many characters. */
export const RECEIPT_MAX_REASON_CHARS = 512
/**
 * Envelopes sent on one stream before their receipts come back (a window of 512 capped the rate
 * at about 3.6k/s here). The receiver reads no further ahead of its receipts than this.
 */
export const DELIVERY_WINDOW = 4096
/**
 * A sender encodes at most this many envelopes per write and a receiver takes at most this many
 * before it yields to the event loop: a whole window at once (4 MiB of 1 KiB messages) held the
 * loop for hundreds of milliseconds, delaying heartbeats and control calls.
 */
export const DELIVERY_EVENT_LOOP_SLICE = 256
/** A failed stream is opened again after a backoff: this, doubling while the failures go on, up to the maximum. */
export const DELIVERY_RETRY_INITIAL_MS = 200
export const DELIVERY_RETRY_MAX_MS = 5000
/** A target that is not connected is looked at again this often (its connect event wakes the sender sooner). */
export const DELIVERY_DISCONNECTED_POLL_MS = 1000
/**
 * Each step of delivery has its own bound, so a stalled peer is named for the step it stalled.
 * Opening the stream (a connection dial is bounded by DIAL_TIMEOUT_MS within it).
 */
export const DELIVERY_DIAL_TIMEOUT_MS = 10_000
/** One write of envelopes or receipts (at most a window of frames): a peer that has not taken it in this time is not reading. */
export const DELIVERY_WRITE_TIMEOUT_MS = 10_000
/** No receipt for the oldest envelope in flight for this long: the stream is reset and resent. */
export const DELIVERY_RECEIPT_TIMEOUT_MS = 10_000
/**
 * A sender keeps its stream open this long after the last receipt while nothing is pending: at a
 * steady trickle (1,000 messages/s spaced evenly) the stream otherwise drained and was reopened
 * again and again, each time a protocol negotiation and a peer-store update on both sides. It
 * stays well under the receiver's idle timeout, so a lingering stream is never taken for a stall.
 */
export const DELIVERY_STREAM_LINGER_MS = 2000
/**
 * A receiver that has answered every envelope waits this long for the next one or the close: a
 * sender closes once nothing has been in flight for DELIVERY_STREAM_LINGER_MS, so a longer
 * silence (a half frame) is a stall.
 */
export const DELIVERY_IDLE_TIMEOUT_MS = 10_000
/** Closing a stream waits for the remote's half of the close at most this long, then resets it. */
export const DELIVERY_CLOSE_TIMEOUT_MS = 5000
/** Delivery streams one node serves and opens at once: one per sender and target, with room for a reconnect's overlap. */
export const DELIVERY_MAX_INBOUND_STREAMS = 16
export const DELIVERY_MAX_OUTBOUND_STREAMS = 16
export const DELIVERY_STREAM_MAX_MESSAGE_BYTES = MESSAGE_MAX_BODY_BYTES + 4096
export const MESSAGE_EXPIRY_SWEEP_MS = 200
/** Finished outgoing messages kept in memory for `message ID` (older ones are read from the store). */
export const MESSAGE_RECENT_CACHE = 10000
/** How often sends whose store write went unanswered are looked up again, until the store answers. */
export const OUTBOX_RESOLVE_INTERVAL_MS = 1000
/**
 * After a send is settled as not sent, its record is looked for once more this much later: a
 * write held up in a stalled store's socket can still be applied after the first look.
 */
export const OUTBOX_ABANDON_RECHECK_MS = 5000
/** Sends settled as not sent, remembered in memory for `message ID` (the store keeps a marker too). */
export const OUTBOX_ABANDONED_MEMORY = 1000
/** A store epoch in a heartbeat: an id, not text; longer ones are refused. */
export const STORE_EPOCH_MAX_CHARS = 64

/** Operations running at once on one daemon; more wait in line. */
export const MAX_CONCURRENT_OPERATIONS = 5
/** Bytes of an action's output kept for the report. */
export const ACTION_OUTPUT_TAIL_BYTES = 4096
/** An action stopped at its timeout gets SIGTERM, then SIGKILL this much later if it has not exited. */
export const ACTION_KILL_GRACE_MS = 2000
/** Recent operation records `aitbc-mesh ops` lists. */
export const OPS_LIST_DEFAULT = 20

/** Sync. */
export const CONFIG_SYNC_MAX_FILE_BYTES = 1024 * 1024
/** probes.configFiles per node, and files in one config.write: a node's own config files, a handful. */
export const SYNC_MAX_CONFIG_FILES = 64
/**
 * Bounds on a sync step's answer, which the requester checks before use. Reasons, commit lines
 * and git refs are for the operator to read; paths are at most PATH_MAX on Linux; listed
 * dirty files and commits are a sample for the operator (the target also sends the exact
 * counts), enough to recognise a real checkout's state without letting a target swell a result.
 */
export const SYNC_ANSWER_MAX_TEXT_CHARS = 4096
export const SYNC_ANSWER_MAX_PATH_CHARS = 4096
export const SYNC_ANSWER_MAX_LISTED = 1000
export const DEFAULT_SYNC_LAG_THRESHOLD = 100
export const DEFAULT_MEMPOOL_TOLERANCE = 10
/** How often heights are re-read while verifying a blockchain catch-up. */
export const SYNC_VERIFY_POLL_MS = 500
/**
 * Keys of an env-style config file (`probes.configFiles` with `keys: env`) that configuration
 * sync never compares, sends or overwrites: AITBC's per-node identity and profile (its setup
 * script writes NODE_ID, p2p_node_id and proposer_id unique to each node; BLOCKCHAIN_MODE,
 * MARKET_ROLE and HARDWARE_PROFILE choose which services a node runs) and anything that looks
 * like a secret. Matched case-insensitively; `*` matches any run of characters. A file's own
 * `keepLocal` adds to this list.
 */
export const DEFAULT_KEEP_LOCAL_KEYS = [
  'NODE_ID', 'p2p_node_id', 'proposer_id', 'blockchain_mode', 'default_peer_rpc_url', 'market_role', 'hardware_profile',
  '*SECRET*', '*KEY*', '*PASSWORD*', '*TOKEN*'
] as const
/** Keys of one env-style file, sent in one config write or named in a sync answer (AITBC's have tens); a file with more is answered as unreadable. */
export const CONFIG_SYNC_MAX_KEYS = 8192
/**
 * A key name or keep-local pattern of an env-style file, in sync answers and config: AITBC's
 * names are under 40 characters; a file with a longer one is answered as unreadable.
 */
export const CONFIG_SYNC_MAX_KEY_CHARS = 256
/** `keepLocal` patterns of one file in the config (DEFAULT_KEEP_LOCAL_KEYS come on top). */
export const CONFIG_SYNC_MAX_KEEP_LOCAL = 256

/** HTTP (metrics, /health, status page): served only when `http:` is configured, loopback only. */
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:7071'
export const HTTP_HEADERS_TIMEOUT_MS = 5000
export const HTTP_REQUEST_TIMEOUT_MS = 10000
export const HTTP_KEEP_ALIVE_TIMEOUT_MS = 5000
export const HTTP_MAX_HEADER_BYTES = 16 * 1024
export const HTTP_MAX_CONNECTIONS = 64
/** Status page clients following /events at once; more get 503. */
export const HTTP_MAX_EVENT_STREAMS = 16
/** A /metrics or state answer taking longer than this is abandoned (500). */
export const HTTP_HANDLER_TIMEOUT_MS = 5000
/** Rows the status page shows. */
export const STATUS_RECENT_MESSAGES = 20
export const STATUS_RECENT_OPERATIONS = 20
export const STATUS_MAX_AGENTS = 200
/** Characters of a message body the status page shows. */
export const STATUS_BODY_PREVIEW_CHARS = 200
/** Sent messages the outbox lists for the status page. */
export const RECENT_SENT_MESSAGES = 50
/** Receipt latency histogram buckets (seconds). */
export const RECEIPT_LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Store write (one batch) duration buckets (seconds): fine below 10 ms, where the receipt p99 goal is. */
export const STORE_WRITE_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]
/** Operations per store write buckets: how much group commit gathers into one transaction. */
export const STORE_WRITE_OPS_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]

/** `aitbc-mesh doctor`. */
/** Each network check (Redis, RPC, SSH, control socket) gives up after this long. */
export const DOCTOR_CHECK_TIMEOUT_MS = 3000
/**
 * Largest clock difference to a peer that passes: heartbeat ages, agent expiry (computed from
 * last_heartbeat on every node) and the registry's clock stamps all assume clocks within about
 * a second; NTP keeps hosts within milliseconds.
 */
export const DOCTOR_MAX_CLOCK_SKEW_MS = 1000

// Naming the process that holds a listen port (daemon start, doctor, init).
/** Holders named in one message; more (a forking server's workers) are counted, not listed. */
export const PORT_OWNER_MAX_LISTED = 3
/** A holder's command line is cut here: enough to recognise it, one line in the journal. */
export const PORT_OWNER_CMDLINE_MAX_CHARS = 200
/**
 * Exit code of a daemon whose listen address another process holds: EX_TEMPFAIL (sysexits.h).
 * Unlike a refused start (2) it can clear, so systemd's Restart=on-failure retries it.
 */
export const EXIT_LISTEN_ADDRESS_IN_USE = 75
/**
 * A failed start closes what it opened; should anything still keep the process alive after this
 * long, it exits anyway so systemd sees the failure rather than a hang.
 */
export const START_FAILED_EXIT_MS = 3000

// Message handlers (issue 15): programs named in a node's own config, run for each stored message of a kind.
/** A handler's timeout when its config gives none; the longest it may ask for is OPERATION_MAX_TIMEOUT_S. */
export const HANDLER_DEFAULT_TIMEOUT_S = 60
export const HANDLER_MAX_TIMEOUT_S = 120
/** Handlers running at once when `handlerConcurrency` is unset: a 2-core node stays responsive. */
export const HANDLER_DEFAULT_CONCURRENCY = 4
/** The most `handlerConcurrency` may ask for: each run is a process. */
export const HANDLER_MAX_CONCURRENCY = 64
/** Handlers configured on one node at most (a table, matched per message). */
export const HANDLER_MAX_ENTRIES = 64
/** Bytes of a handler's stderr carried back in its outcome (the receipt stays small). */
export const HANDLER_OUTPUT_TAIL_BYTES = 2048
/** A timed-out handler's process group gets SIGTERM, then SIGKILL this much later. */
export const HANDLER_KILL_GRACE_MS = 2000
/** Handler runs waiting in memory; more stay in the store's pending index and are read as room frees up. */
export const HANDLER_QUEUE_MEMORY = 10_000
/**
 * Environment variables a handler never sees (names matched case-insensitively, `*` any text):
 * credentials the daemon holds are not the handler's to use.
 */
export const HANDLER_ENV_DENY = ['REDIS_URL', 'AITBC_MESH_REDIS*', '*SECRET*', '*TOKEN*', '*KEY*', '*PASSWORD*', '*PASSWD*', '*CREDENTIAL*'] as const
/**
 * Reserved message kinds (the daemon's own, refused from `send`). An outcome carries a target's
 * handler result back to the sender.
 */
export const RESERVED_KIND_PREFIX = 'aitbc-mesh.'
export const OUTCOME_KIND = 'aitbc-mesh.outcome'
/** An outcome outlives the message it reports on by at most this (the sender may be away meanwhile). */
export const OUTCOME_TTL_S = 24 * 3600

// Capability routing.
/** Nodes a routed message is tried on at most (the best candidate, then the next ones). */
export const ROUTE_MAX_ATTEMPTS = 3
/** How often routed messages waiting on a node are checked for that node going offline. */
export const ROUTE_CHECK_INTERVAL_MS = 250
