import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" } },
      { test: { name: "react", include: ["test/react/**/*.test.{ts,tsx}"], environment: "happy-dom" } },
      { test: { name: "tabs", include: ["test/tabs/**/*.test.ts"], environment: "node" } },
      { test: { name: "vue", include: ["test/vue/**/*.test.ts"], environment: "happy-dom" } },
      { test: { name: "angular", include: ["test/angular/**/*.test.ts"], environment: "happy-dom" } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          // Each file starts its own `wrangler dev` (test/integration/server.ts).
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Tests stop and restart the server: never run two files at once.
          fileParallelism: false,
        },
      },
    ],
  },
});
