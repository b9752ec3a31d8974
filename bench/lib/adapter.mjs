/**
 * The contract every system under test implements (one module per system in
 * bench/adapters/, default export). The load generator only ever talks to these.
 *
 * @typedef {object} StartOptions
 * @property {number} port        loopback port to listen on (free, chosen by the harness)
 * @property {string} cpus        taskset CPU list for the server process(es), e.g. "1"
 * @property {(line: string) => void} log  progress output
 *
 * @typedef {object} RunningServer
 * @property {string} url         base URL, e.g. "http://127.0.0.1:9001"
 * @property {() => number[]} pids  server process ids whose CPU time and RSS are sampled
 *                                  (all of them: e.g. wrangler + workerd)
 * @property {() => Promise<void>} stop   stops everything it started (no orphans)
 * @property {() => Promise<void>} [kill] SIGKILL (crash), keeping state, for the storm scenario
 * @property {() => Promise<void>} [restart] start again after kill, same port and state
 *
 * @typedef {object} ConnectOptions
 * @property {string} url
 * @property {string} room
 * @property {string} user
 * @property {string} [localAddress]  source address (127.0.0.x) so 50,000 sockets fit in the port range
 * @property {(data: unknown) => void} onMessage   called once per delivered broadcast with its payload
 * @property {() => void} [onClose]
 *
 * @typedef {object} Connection
 * @property {(data: object) => void} publish   sends one broadcast into the room (fire and forget)
 * @property {() => void} close
 * @property {() => Promise<void>} [reconnect]   for the storm scenario: resolves when live again
 *
 * @typedef {object} Adapter
 * @property {string} name
 * @property {string} description   one line: what runs, how (for the report)
 * @property {boolean} [presence]  connect() takes `presence: true` (list the client as `user`) and
 *                                  `onPresence(frame)`; for the presence scenario
 * @property {boolean} [roomcastProtocol]  the server speaks docs/protocol.md (history, resume,
 *                                  flow control), so the `slow` scenario can drive it with its own client
 * @property {number} [fdsPerConnection]  file descriptors the busiest server process holds per
 *                                  client socket (default 1); with the per-process limit it
 *                                  decides which connection counts can run at all
 * @property {(o: StartOptions) => Promise<RunningServer>} start
 * @property {(o: ConnectOptions) => Promise<Connection>} connect  resolves once the socket can receive
 */
export {};
