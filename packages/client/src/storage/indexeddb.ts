/**
 * A durable outbox in IndexedDB: queued publishes survive a page reload and are
 * sent after it with their original ids (the server dedupes them, so each is
 * stored exactly once). One object store with an auto-incremented key keeps
 * entries in insertion order, across tabs too (IndexedDB hands out the keys).
 *
 * Rows are keyed by (room, user): after a sign-out and a sign-in as someone else in
 * the same browser, the new user's room never sees, nor sends, the old user's rows.
 */
import type { OutboxEntry, OutboxStorage } from "../outbox.js";

const STORE = "outbox";
/**
 * 1: rows keyed by a client-computed order (two tabs could collide); dropped by 2.
 * 2: rows `{ room, entry }`, keyed by room only.
 * 3: rows `{ room, user, entry }`. Rows left by version 2 name no user, and nothing
 *    says whose they were; sending them as whoever signs in next is exactly the bug
 *    version 3 fixes, so they stay in the store, unindexed, and are never sent.
 */
const VERSION = 3;
const BY_USER = "by-room-user";
const BY_ID = "by-room-user-id";

export interface IndexedDbStorageOptions {
  /** Database name. Default "roomcast". */
  name?: string;
  /** An IDBFactory to use instead of the global `indexedDB` (e.g. fake-indexeddb in tests). */
  indexedDB?: IDBFactory;
  /**
   * How long opening may stay blocked by another tab that holds an older version of the
   * database open (a tab still running the previous build), before it fails. Default 3,000 ms.
   */
  blockedTimeoutMs?: number;
}

interface Row {
  room: string;
  user: string;
  entry: OutboxEntry;
}

export function indexedDbStorage(options: IndexedDbStorageOptions = {}): OutboxStorage {
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory) throw new TypeError("indexedDbStorage needs IndexedDB (a browser), or pass { indexedDB }");
  const blockedTimeoutMs = options.blockedTimeoutMs ?? 3_000;
  let db: Promise<IDBDatabase> | undefined;
  const open = () =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const request = factory.open(options.name ?? "roomcast", VERSION);
      // An upgrade waits until every other connection to the database closes. A tab of
      // an older build that does not close on `versionchange` would make it wait forever
      // (and every publish behind the restore with it): give up after a while instead.
      let blocked: ReturnType<typeof setTimeout> | undefined;
      request.onblocked = () => {
        blocked ??= setTimeout(
          () => reject(new Error(`IndexedDB: opening the outbox is blocked by another tab with an older version of this app open (waited ${blockedTimeoutMs} ms); reload or close that tab`)),
          blockedTimeoutMs,
        );
      };
      request.onupgradeneeded = (event) => {
        const db = request.result;
        const tx = request.transaction!;
        if (event.oldVersion < 2 && db.objectStoreNames.contains(STORE)) db.deleteObjectStore(STORE);
        const store = db.objectStoreNames.contains(STORE) ? tx.objectStore(STORE) : db.createObjectStore(STORE, { autoIncrement: true });
        // Version 2's indexes were by room alone.
        for (const name of ["by-room", "by-id"]) if (store.indexNames.contains(name)) store.deleteIndex(name);
        store.createIndex(BY_USER, ["room", "user"]);
        store.createIndex(BY_ID, ["room", "user", "entry.id"], { unique: true });
      };
      request.onsuccess = () => {
        clearTimeout(blocked);
        resolve(request.result);
      };
      request.onerror = () => {
        clearTimeout(blocked);
        reject(request.error);
      };
    }).then((opened) => {
      // A newer version opened in another tab: let it upgrade, reopen next time.
      opened.onversionchange = () => {
        opened.close();
        db = undefined;
      };
      return opened;
    }, (err: unknown) => {
      db = undefined; // the next call tries again
      throw err;
    }));

  const run = async <T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T> | void): Promise<T | undefined> => {
    const tx = (await open()).transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    return new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  };

  return {
    async load(room, user) {
      // Index order is (room, user, then primary key): insertion order within the pair.
      const rows = (await run("readonly", (store) => store.index(BY_USER).getAll([room, user]))) as Row[] | undefined;
      return (rows ?? []).map((r) => r.entry);
    },
    async add(room, user, entry) {
      await run("readwrite", (store) => store.add({ room, user, entry } satisfies Row));
    },
    async remove(room, user, id) {
      await run("readwrite", (store) => {
        const request = store.index(BY_ID).getKey([room, user, id]);
        request.onsuccess = () => {
          if (request.result !== undefined) store.delete(request.result);
        };
      });
    },
  };
}
