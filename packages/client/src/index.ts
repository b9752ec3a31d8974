export { createClient, RoomcastClient, DEFAULTS, type ClientOptions } from "./client.js";
export { Room, type RoomEvents, type GapInfo, type PublishOptions, type HistoryPage } from "./room.js";
export type { ConnectionState, StateChange, TokenProvider } from "./connection.js";
export { RoomcastClientError, type ClientErrorCode } from "./errors.js";
export { memoryStorage, type OutboxStorage, type OutboxEntry, type OverflowPolicy, type PublishAck } from "./outbox.js";
export { indexedDbStorage } from "./storage/indexeddb.js";
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export type { SocketFactory, SocketLike, TokenTransport } from "./transport.js";
export type { Member, Message } from "@roomcast/protocol";
