import { defineConfig } from "tsdown";

export default defineConfig({
  entry: { index: "src/index.ts", react: "src/react.ts" },
  format: "esm",
  platform: "neutral",
  target: "es2022",
  dts: { generator: "tsc", tsc: { eager: true } },
  clean: true,
  // The protocol package is internal to this repo: bundle it (code and types) in.
  noExternal: ["@roomcast/protocol"],
  external: ["react", "valibot"],
});
