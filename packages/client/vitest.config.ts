import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node" } },
      { test: { name: "react", include: ["test/react/**/*.test.{ts,tsx}"], environment: "happy-dom" } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          environment: "node",
          // One real `wrangler dev` for the whole run; tests use unique rooms.
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // Tests stop and restart the server: never run two files at once.
          fileParallelism: false,
        },
      },
    ],
  },
});
