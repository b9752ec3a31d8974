/**
 * Which directory shard holds a room: 16 shards (`shard-0` … `shard-15`), chosen by
 * FNV-1a (32 bits) of the room name. Stable across deploys and isolates: changing the
 * hash or the count would move every room to another shard, and the old entries would
 * only be forgotten when they go stale (see directory.ts).
 */
export const DIRECTORY_SHARDS = 16;

export function shardOf(room: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < room.length; i++) {
    h ^= room.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % DIRECTORY_SHARDS;
}

export function shardName(shard: number): string {
  return `shard-${shard}`;
}

/** Whether `name` is (or could be, for any shard count) a shard's instance name. */
export function isShardName(name: string): boolean {
  return /^shard-\d+$/.test(name);
}
