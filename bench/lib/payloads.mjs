/**
 * Realistic payloads for the compression scenario (deterministic: a seeded PRNG), so
 * permessage-deflate is measured on what an app sends, not on `"xxxx…"` padding
 * (which compresses to nothing and flatters deflate).
 *
 * - `chat`: a chat line of natural words, 100-300 bytes of JSON, with a message id,
 *   the author and a client timestamp, as a chat app publishes.
 * - `state`: a JSON document of about 2-4 KB with repeated keys (a shared board: a list
 *   of players with positions, scores and status), numbers changing every message.
 *
 * Each payload also carries the load generator's `t`, `i` and `r` (see loadgen.mjs).
 */

/** Mulberry32: small, fast, good enough for test data. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// About 300 of the most common English words, so sentences look like chat.
const WORDS = `the be to of and a in that have I it for not on with he as you do at this but his by from they we say her she
or an will my one all would there their what so up out if about who get which go me when make can like time no just him know
take people into year your good some could them see other than then now look only come its over think also back after use two
how our work first well way even new want because any these give day most us is are was were been has had did said going got
yes ok okay sure thanks thank sorry hey hi hello lol great nice cool maybe really right here today tomorrow tonight morning later
meeting call deploy build release bug fix test review merge branch PR ticket doc docs page link send sent check checked looks
works broke broken again still soon done ready wait minute minutes hour lunch coffee team room channel message chat everyone
anyone someone please help question answer idea plan week weekend friday monday update status issue server client browser app
mobile phone laptop screen slow fast error logs metrics dashboard staging production rollback feature flag users customer
agree disagree think thought feel seems probably definitely actually literally basically honestly already almost enough`.split(/\s+/);

const NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe"];

function sentence(rand, minBytes, maxBytes) {
  const target = minBytes + Math.floor(rand() * (maxBytes - minBytes));
  let text = "";
  while (text.length < target) {
    let w = WORDS[Math.floor(rand() * WORDS.length)];
    if (text === "" || rand() < 0.08) w = w[0].toUpperCase() + w.slice(1);
    text += (text ? " " : "") + w;
    if (rand() < 0.07) text += rand() < 0.5 ? "," : rand() < 0.5 ? "." : "?";
  }
  return text;
}

/** Chat lines: the whole payload's JSON is 100-300 bytes. */
export function chatPayloads(seed = 1) {
  const rand = prng(seed);
  return (i, t, room = 0) => {
    const from = NAMES[Math.floor(rand() * NAMES.length)];
    return { t, i, r: room, kind: "chat", author: from, sentAt: 1_764_000_000_000 + i * 137, text: sentence(rand, 40, 200) };
  };
}

/** JSON state of a shared board, about 2-4 KB: 12-20 players with the same keys each. */
export function statePayloads(seed = 2) {
  const rand = prng(seed);
  const round = (v) => Math.round(v * 100) / 100;
  return (i, t, room = 0) => {
    const count = 12 + Math.floor(rand() * 9);
    const players = [];
    for (let p = 0; p < count; p++) {
      players.push({
        id: `player-${p}`,
        name: NAMES[p % NAMES.length],
        team: p % 2 === 0 ? "red" : "blue",
        position: { x: round(rand() * 1000), y: round(rand() * 1000), z: round(rand() * 10) },
        velocity: { x: round(rand() * 4 - 2), y: round(rand() * 4 - 2) },
        health: Math.floor(rand() * 101),
        score: Math.floor(rand() * 5000),
        status: rand() < 0.8 ? "active" : rand() < 0.5 ? "idle" : "respawning",
        lastInputAt: 1_764_000_000_000 + Math.floor(rand() * 1e6),
      });
    }
    return { t, i, r: room, kind: "state", version: i, tick: i * 3, map: "harbor", mode: "capture-the-flag", players };
  };
}

export const PAYLOADS = { chat: chatPayloads, state: statePayloads };
