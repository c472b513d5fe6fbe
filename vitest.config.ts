import { defineConfig } from "vitest/config";

// Unit tests run in node; files that need a DOM opt in with `// @vitest-environment happy-dom`.
export default defineConfig({
  test: {
    include: ["js/**/*.test.ts"],
    environment: "node",
    css: false,
    restoreMocks: true,
  },
});
