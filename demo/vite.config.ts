import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const src = (path: string) => fileURLToPath(new URL(`../packages/${path}`, import.meta.url));

export default defineConfig({
  plugins: [react()],
  // Build straight from the workspace sources, so `npm run dev` needs no separate client build.
  resolve: {
    alias: [
      { find: "@roomcast/client/react", replacement: src("client/src/react.ts") },
      { find: "@roomcast/client", replacement: src("client/src/index.ts") },
      { find: "@roomcast/protocol", replacement: src("protocol/src/index.ts") },
    ],
  },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
});
