import { defineConfig } from "tsdown";

export default defineConfig({
  entry: { index: "src/index.ts", react: "src/react.ts", vue: "src/vue.ts", angular: "src/angular.ts" },
  format: "esm",
  platform: "neutral",
  target: "es2022",
  dts: { generator: "tsc", tsc: { eager: true } },
  clean: true,
  // The declaration build (tsc) takes most of the ~10 s; rolldown's timing report says only that.
  checks: { bundlerTimings: false },
  // The protocol package is internal to this repo: bundle it (code and types) in.
  deps: { alwaysBundle: ["@roomcast/protocol"], neverBundle: ["react", "vue", /^@angular\//, "valibot"] },
});
