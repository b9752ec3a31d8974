import { defineConfig } from "vite";
import { proxy, sources } from "../proxy.js";

export default defineConfig({
  resolve: { alias: sources() },
  server: { port: 5174, proxy },
});
