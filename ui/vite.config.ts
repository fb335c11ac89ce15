import { defineConfig } from "vitest/config";

// The window loads ui/dist through Tauri's asset protocol: relative asset paths, no dev
// server needed. Tests run the UI logic in jsdom.
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2021",
    chunkSizeWarningLimit: 1200,
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
  },
});
