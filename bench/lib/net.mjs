export { freePort } from "./process.mjs";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
