/// <reference types="vitest" />
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";
import { VitePWA } from "vite-plugin-pwa";
import { fileURLToPath, URL } from "node:url";

// The daemon serves web/dist at "/"; `npm run dev` proxies the API to a local `shoebox serve`.
const daemon = process.env.SHOEBOX_URL ?? "http://127.0.0.1:8420";

export default defineConfig({
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  plugins: [
    vue(),
    VitePWA({
      // Our own worker (src/sw.ts): it strips the thumbnail token from cache keys, bounds the
      // thumbnail cache and attaches the access token to video Range requests.
      strategies: "injectManifest",
      srcDir: "src",
      filename: "sw.ts",
      registerType: "autoUpdate",
      injectRegister: false,
      injectManifest: {
        globPatterns: ["**/*.{js,css,html,svg,png,json,woff2}"],
        maximumFileSizeToCacheInBytes: 4 * 1024 * 1024,
      },
      manifest: {
        name: "Shoebox",
        short_name: "Shoebox",
        description: "Your photo library, at home.",
        theme_color: "#16181d",
        background_color: "#16181d",
        display: "standalone",
        start_url: "/",
        scope: "/",
        icons: [
          { src: "/icons/icon-192.png", sizes: "192x192", type: "image/png" },
          { src: "/icons/icon-512.png", sizes: "512x512", type: "image/png" },
          { src: "/icons/maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
        ],
      },
    }),
  ],
  build: {
    target: "es2020",
    sourcemap: false,
    manifest: true,
    chunkSizeWarningLimit: 1200,
  },
  server: { proxy: { "/api": { target: daemon, ws: true } } },
  test: { environment: "jsdom", include: ["tests/**/*.test.ts"] },
});
