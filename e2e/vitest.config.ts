import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ["**/*.e2e.ts"],
    environment: "node",
    testTimeout: 90_000,
    hookTimeout: 120_000,
    // One browser and one server per file; files run one after another.
    fileParallelism: false,
  },
});
