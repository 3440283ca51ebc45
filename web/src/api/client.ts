/**
 * The one client of /api/v1. It keeps the access token in memory only (never in storage), sends
 * it as a Bearer token, refreshes it once on a 401 with the HttpOnly refresh cookie, and tells the
 * session store when the refresh fails so the app can return to the login page.
 * Every state-changing request carries `Content-Type: application/json` (the daemon's CSRF rule).
 */
import type { Tokens } from "./types";

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: Record<string, unknown> | null = null,
  ) {
    super(message);
  }
}

/** A network failure (offline, daemon down): the request never got an answer. */
export class NetworkError extends Error {}

type Listener = (tokens: Tokens | null, reason?: "expired" | "logout") => void;

export class Api {
  private access: string | null = null;
  thumbToken: string | null = null;
  private refreshing: Promise<Tokens | null> | null = null;
  private listeners: Listener[] = [];

  onTokens(fn: Listener): void {
    this.listeners.push(fn);
  }

  get authenticated(): boolean {
    return this.access !== null;
  }

  get accessToken(): string | null {
    return this.access;
  }

  setTokens(tokens: Tokens | null, reason?: "expired" | "logout"): void {
    this.access = tokens?.access_token ?? null;
    this.thumbToken = tokens?.thumb_token ?? null;
    for (const fn of this.listeners) fn(tokens, reason);
  }

  /** Exchanges the refresh cookie for new tokens; null when there is no valid session. */
  refresh(): Promise<Tokens | null> {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const res = await fetch("/api/v1/auth/refresh", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: "{}",
            credentials: "same-origin",
          });
          if (!res.ok) return null;
          const tokens = (await res.json()) as Tokens;
          this.setTokens(tokens);
          return tokens;
        } catch {
          throw new NetworkError("offline");
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  async login(username: string, password: string): Promise<Tokens> {
    const tokens = await this.request<Tokens>("POST", "/auth/login", { username, password, refresh_in: "cookie" }, false);
    this.setTokens(tokens);
    return tokens;
  }

  async logout(): Promise<void> {
    try {
      await this.request("POST", "/auth/logout", {});
    } finally {
      this.setTokens(null, "logout");
    }
  }

  async get<T>(path: string, params?: Record<string, string | number | boolean | undefined | null>): Promise<T> {
    let url = path;
    if (params) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
      const s = qs.toString();
      if (s) url += (url.includes("?") ? "&" : "?") + s;
    }
    return this.request<T>("GET", url);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, body);
  }

  /** A file (an original) as a blob, with the Bearer token (originals take no URL token). */
  async blob(path: string, signal?: AbortSignal): Promise<Blob> {
    const res = await this.send("GET", path, undefined, true, signal);
    if (!res.ok) throw await toError(res);
    return res.blob();
  }

  async request<T>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const res = await this.send(method, path, body, auth);
    if (res.status === 204) return undefined as T;
    if (!res.ok) throw await toError(res);
    return (await res.json()) as T;
  }

  private async send(method: string, path: string, body: unknown, auth: boolean, signal?: AbortSignal): Promise<Response> {
    const go = async (): Promise<Response> => {
      const headers: Record<string, string> = { "X-Shoebox-Request": "1" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (auth && this.access) headers.Authorization = `Bearer ${this.access}`;
      try {
        return await fetch("/api/v1" + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "same-origin",
          signal,
        });
      } catch (e) {
        if ((e as Error).name === "AbortError") throw e;
        throw new NetworkError(String(e));
      }
    };
    let res = await go();
    if (res.status === 401 && auth && this.access !== null) {
      // The access token expired (15 minutes): refresh once, silently, and try again.
      const tokens = await this.refresh().catch(() => null);
      if (!tokens) {
        this.setTokens(null, "expired");
        return res;
      }
      res = await go();
    }
    return res;
  }

  /** URL of a thumbnail for an <img>: same origin, the thumbnail token as `?t=`. */
  thumbUrl(thumbKey: string, size: string): string {
    const t = this.thumbToken ? `?t=${encodeURIComponent(this.thumbToken)}` : "";
    return `/api/v1/t/${thumbKey}/${size}${t}`;
  }

  faceUrl(faceId: string): string {
    const t = this.thumbToken ? `?t=${encodeURIComponent(this.thumbToken)}` : "";
    return `/api/v1/t/faces/${faceId}/crop${t}`;
  }
}

async function toError(res: Response): Promise<ApiError> {
  try {
    const body = await res.json();
    return new ApiError(res.status, body.error ?? "error", body.message ?? res.statusText, body.details ?? null);
  } catch {
    return new ApiError(res.status, "error", res.statusText || `HTTP ${res.status}`);
  }
}

export const api = new Api();
