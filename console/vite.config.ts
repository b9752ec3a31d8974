import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

/**
 * Built into the demo's output (demo/dist/console/), which the Worker serves as static
 * assets at /console/. The demo's build empties demo/dist, so `npm run build:demo` builds
 * the demo first and this second; this build empties only its own folder.
 */
export default defineConfig({
  plugins: [react()],
  base: "/console/",
  build: {
    outDir: fileURLToPath(new URL("../demo/dist/console", import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
  },
});
