/**
 * Blurhash placeholders as tiny data: URLs, decoded once per hash and kept in a bounded map, so
 * a tile shows its colours at once and scrolling back never decodes again.
 */
import { decode } from "blurhash";

const cache = new Map<string, string>();
const MAX = 3000;
let canvas: HTMLCanvasElement | null = null;

export function placeholderUrl(hash: string | null | undefined): string | null {
  if (!hash || hash.length < 6) return null;
  const hit = cache.get(hash);
  if (hit) return hit;
  try {
    const w = 16, h = 16;
    const pixels = decode(hash, w, h);
    canvas ??= document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    const img = ctx.createImageData(w, h);
    img.data.set(pixels);
    ctx.putImageData(img, 0, 0);
    const url = canvas.toDataURL("image/png");
    if (cache.size >= MAX) cache.delete(cache.keys().next().value as string);
    cache.set(hash, url);
    return url;
  } catch {
    return null;
  }
}
