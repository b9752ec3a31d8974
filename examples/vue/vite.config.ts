import { defineConfig } from "vite";
import { proxy, sources } from "../proxy.js";

export default defineConfig({
  resolve: {
    alias: [
      ...sources(),
      // Templates as strings (no .vue files, no plugin): Vue's build with the template compiler.
      { find: /^vue$/, replacement: "vue/dist/vue.esm-bundler.js" },
    ],
  },
  server: { port: 5173, proxy },
});
