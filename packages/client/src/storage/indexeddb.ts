/**
 * A durable outbox in IndexedDB: queued publishes survive a page reload and are
 * sent after it with their original ids (the server dedupes them, so each is
 * stored exactly once). One object store keyed by [room, seqNo] keeps each room's
 * entries in insertion order.
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
  order: number;
  entry: OutboxEntry;
}

export function indexedDbStorage(options: IndexedDbStorageOptions = {}): OutboxStorage {
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!factory) throw new TypeError("indexedDbStorage needs IndexedDB (a browser), or pass { indexedDB }");
  let db: Promise<IDBDatabase> | undefined;
  const open = () =>
    (db ??= new Promise((resolve, reject) => {
      const request = factory.open(options.name ?? "roomcast", 1);
      request.onupgradeneeded = () => {
        const store = request.result.createObjectStore(STORE, { keyPath: ["room", "order"] });
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

  // Orders entries across reloads: time-based, and strictly increasing within a page
  // (a wrapping counter reordered, and with `put` overwrote, entries added in one ms).
  let last = 0;
  const nextOrder = () => (last = Math.max(last + 1, Date.now() * 1_000));

  return {
    async load(room) {
      const range = IDBKeyRange.bound([room, -Infinity], [room, Infinity]);
      const rows = (await run("readonly", (store) => store.getAll(range))) as Row[] | undefined;
      return (rows ?? []).map((r) => r.entry);
    },
    async add(room, entry) {
      await run("readwrite", (store) => store.add({ room, order: nextOrder(), entry } satisfies Row));
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
