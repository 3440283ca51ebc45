/**
 * Who is logged in. The access token lives only in the API client's memory; on start the app
 * asks for new tokens with the HttpOnly refresh cookie, so a reload keeps the session without
 * anything secret in storage. Offline, the last user's *name* (not a token) lets the cached
 * timeline be shown.
 */
import { defineStore } from "pinia";
import { api, NetworkError } from "@/api/client";
import { live } from "@/api/live";
import type { Tokens } from "@/api/types";

const LAST_USER = "shoebox.lastUser";

export const useSession = defineStore("session", {
  state: () => ({
    user: null as null | { name: string; role: string },
    started: false,
    setupNeeded: false,
    offline: false,
    message: "" as string,
  }),
  getters: {
    signedIn: (s) => s.user !== null,
    canEdit: (s) => s.user?.role === "admin" || s.user?.role === "user",
  },
  actions: {
    bind() {
      api.onTokens((tokens: Tokens | null, reason) => {
        if (tokens) {
          this.user = { name: tokens.user.name, role: tokens.user.role };
          this.offline = false;
          localStorage.setItem(LAST_USER, JSON.stringify(this.user));
          live.start();
          sendTokenToWorker(tokens.access_token);
        } else {
          if (reason === "expired") this.message = "session_ended";
          this.user = null;
          live.stop();
          sendTokenToWorker(null);
        }
      });
    },
    /** Restores the session from the refresh cookie (or decides setup/login is needed). */
    async start() {
      if (this.started) return;
      this.bind();
      try {
        // both at once: a reload waits for one round trip, not two (with no admin yet there is no
        // cookie either, and the refresh just answers "no session")
        const [setup] = await Promise.all([
          fetch("/api/v1/setup").then((r) => (r.ok ? r.json() : { needed: false })),
          api.refresh(),
        ]);
        this.setupNeeded = !!setup.needed;
      } catch (e) {
        if (e instanceof NetworkError || e instanceof TypeError) this.goOffline();
      }
      this.started = true;
    },
    goOffline() {
      const last = localStorage.getItem(LAST_USER);
      if (last) {
        this.user = JSON.parse(last);
        this.offline = true;
      }
    },
    async login(username: string, password: string) {
      await api.login(username, password);
      this.message = "";
    },
    async logout() {
      try {
        await api.logout();
      } catch {
        /* offline: forget locally anyway */
      }
      this.user = null;
      localStorage.removeItem(LAST_USER);
      // a shared computer must not keep showing this library from the cache
      if ("caches" in window) for (const name of await caches.keys()) if (name.startsWith("shoebox-")) await caches.delete(name);
    },
  },
});

/** The service worker adds the token to video Range requests (a <video> cannot send headers). */
export function sendTokenToWorker(token: string | null): void {
  navigator.serviceWorker?.controller?.postMessage({ type: "token", token });
}
