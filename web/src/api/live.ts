/**
 * The live socket (/api/v1/live): authenticates with its first message (browsers cannot set
 * headers on a WebSocket, and tokens never go in URLs), reconnects with backoff, and treats two
 * missed heartbeats as a dead connection.
 */
import { api } from "./client";

export interface LiveMessage {
  id: string | null;
  type: string;
  time: string;
  data: Record<string, any>;
}

type Handler = (msg: LiveMessage) => void;

export class LiveSocket {
  private ws: WebSocket | null = null;
  private handlers: Handler[] = [];
  private retry = 0;
  private timer: number | undefined;
  private watchdog: number | undefined;
  private stopped = true;

  on(fn: Handler): () => void {
    this.handlers.push(fn);
    return () => (this.handlers = this.handlers.filter((h) => h !== fn));
  }

  start(): void {
    this.stopped = false;
    if (!this.ws) this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    window.clearTimeout(this.watchdog);
    this.ws?.close();
    this.ws = null;
  }

  private connect(): void {
    if (this.stopped || !api.accessToken) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/live`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: api.accessToken }));
    ws.onmessage = (m) => {
      this.retry = 0;
      this.feed();
      let msg: LiveMessage;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      for (const h of this.handlers) h(msg);
    };
    ws.onclose = (ev) => {
      this.ws = null;
      window.clearTimeout(this.watchdog);
      if (this.stopped) return;
      const go = () => this.connect();
      if (ev.code === 4401) {
        // credentials ended: a refreshed token may open it again
        api.refresh().then((t) => t && (this.timer = window.setTimeout(go, 500)), () => this.later(go));
        return;
      }
      this.later(go);
    };
  }

  private later(fn: () => void): void {
    this.retry = Math.min(this.retry + 1, 6);
    this.timer = window.setTimeout(fn, 500 * 2 ** this.retry);
  }

  private feed(): void {
    window.clearTimeout(this.watchdog);
    this.watchdog = window.setTimeout(() => this.ws?.close(), 35_000);
  }
}

export const live = new LiveSocket();
