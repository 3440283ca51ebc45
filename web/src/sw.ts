/// <reference lib="webworker" />
/**
 * The service worker: the app shell is precached (so the app opens offline); thumbnails are
 * cached as they are seen, keyed WITHOUT the `?t=` token (a new login must not miss the cache),
 * bounded to 2000 entries and purged on quota errors; the timeline and album API answers are
 * network-first with the last answer as the offline fallback. It also adds the access token to
 * requests for originals, so a <video> can stream with Range (it cannot send headers itself).
 */
import { cleanupOutdatedCaches, createHandlerBoundToURL, precacheAndRoute } from "workbox-precaching";
import { NavigationRoute, registerRoute } from "workbox-routing";
import { CacheFirst, NetworkFirst } from "workbox-strategies";
import { ExpirationPlugin } from "workbox-expiration";

declare const self: ServiceWorkerGlobalScope & { __WB_MANIFEST: Array<{ url: string; revision: string | null }> };

self.skipWaiting();
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

precacheAndRoute(self.__WB_MANIFEST);
cleanupOutdatedCaches();

// client-side routes open the cached index.html; API and share-media URLs never do
registerRoute(new NavigationRoute(createHandlerBoundToURL("/index.html"), { denylist: [/^\/api\//, /^\/metrics/] }));

const withoutToken = (url: string): string => {
  const u = new URL(url);
  u.searchParams.delete("t");
  u.searchParams.delete("s");
  return u.toString();
};

registerRoute(
  ({ url, request }) => request.method === "GET" && (url.pathname.startsWith("/api/v1/t/") || /^\/api\/v1\/s\/[^/]+\/t\//.test(url.pathname)),
  new CacheFirst({
    cacheName: "shoebox-thumbs",
    matchOptions: { ignoreVary: true },
    plugins: [
      { cacheKeyWillBeUsed: async ({ request }) => withoutToken(request.url) },
      { cacheWillUpdate: async ({ response }) => (response && response.status === 200 ? response : null) },
      new ExpirationPlugin({ maxEntries: 2000, purgeOnQuotaError: true }),
    ],
  }),
);

registerRoute(
  ({ url, request }) =>
    request.method === "GET" &&
    (url.pathname.startsWith("/api/v1/timeline/") || url.pathname.startsWith("/api/v1/albums") || url.pathname === "/api/v1/map/points"),
  new NetworkFirst({
    cacheName: "shoebox-api",
    networkTimeoutSeconds: 6,
    matchOptions: { ignoreVary: true },
    plugins: [
      { cacheWillUpdate: async ({ response }) => (response && response.status === 200 ? response : null) },
      new ExpirationPlugin({ maxEntries: 500, purgeOnQuotaError: true }),
    ],
  }),
);

// --- the access token, for originals (videos stream with Range) ---------------------------------
let token: string | null = null;
self.addEventListener("message", (ev) => {
  if (ev.data?.type === "token") token = ev.data.token ?? null;
});

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (url.origin !== self.location.origin || ev.request.method !== "GET") return;
  if (!/^\/api\/v1\/photos\/[^/]+\/(original|files\/\d+)$/.test(url.pathname)) return;
  if (ev.request.headers.has("Authorization")) return;
  ev.respondWith(
    (async () => {
      if (!token) {
        // a restarted worker lost the token: ask the pages for it once
        const clients = await self.clients.matchAll({ type: "window" });
        for (const c of clients) c.postMessage({ type: "need-token" });
        await new Promise((r) => setTimeout(r, 300));
      }
      const headers = new Headers(ev.request.headers);
      if (token) headers.set("Authorization", `Bearer ${token}`);
      return fetch(new Request(ev.request, { headers, mode: "same-origin", credentials: "same-origin" }));
    })(),
  );
});
