/**
 * A durable outbox in IndexedDB: queued publishes survive a page reload and are
 * sent after it with their original ids (the server dedupes them, so each is
 * stored exactly once). One object store with an auto-incremented key keeps
 * entries in insertion order, across tabs too (IndexedDB hands out the keys).
 */
import type { OutboxEntry, OutboxStorage } from "../outbox.js";

const STORE = "outbox";

export interface IndexedDbStorageOptions {
  /** Database name. Default "roomcast". */
  name?: string;
  /** An IDBFactory to use instead of the global `indexedDB` (e.g. fake-indexeddb in tests). */
  indexedDB?: IDBFactory;
}

interface Row {
  room: string;
  entry: OutboxEntry;
}

export function indexedDbStorage(options: IndexedDbStorageOptions = {}): OutboxStorage {
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory) throw new TypeError("indexedDbStorage needs IndexedDB (a browser), or pass { indexedDB }");
  let db: Promise<IDBDatabase> | undefined;
  const open = () =>
    (db ??= new Promise((resolve, reject) => {
      const request = factory.open(options.name ?? "roomcast", 2);
      request.onupgradeneeded = () => {
        const db = request.result;
        // Version 1 keyed rows by a client-computed order, which two tabs could collide on.
        if (db.objectStoreNames.contains(STORE)) db.deleteObjectStore(STORE);
        const store = db.createObjectStore(STORE, { autoIncrement: true });
        store.createIndex("by-room", "room");
        store.createIndex("by-id", ["room", "entry.id"], { unique: true });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
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
    async load(room) {
      // Index order is (room, then primary key): insertion order within the room.
      const rows = (await run("readonly", (store) => store.index("by-room").getAll(room))) as Row[] | undefined;
      return (rows ?? []).map((r) => r.entry);
    },
    async add(room, entry) {
      await run("readwrite", (store) => store.add({ room, entry } satisfies Row));
    },
    async remove(room, id) {
      await run("readwrite", (store) => {
        const request = store.index("by-id").getKey([room, id]);
        request.onsuccess = () => {
          if (request.result !== undefined) store.delete(request.result);
        };
      });
    },
  };
}
