/** Registers the service worker (offline shell, thumbnail cache, token for video Range requests). */
import { api } from "./api/client";

export function registerWorker(): void {
  if (!("serviceWorker" in navigator) || import.meta.env.DEV) return;
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => undefined);
  navigator.serviceWorker.addEventListener("controllerchange", () => {
    navigator.serviceWorker.controller?.postMessage({ type: "token", token: api.accessToken });
  });
  // a worker that restarted asks for the token again
  navigator.serviceWorker.addEventListener("message", (ev) => {
    if (ev.data?.type === "need-token") (ev.source as ServiceWorker | null)?.postMessage({ type: "token", token: api.accessToken });
  });
}
