/**
 * The offline base map: Natural Earth country outlines from the `world-atlas` package, shipped
 * inside the app (no tile server, no network). Online tiles are not used.
 */
import type { StyleSpecification } from "maplibre-gl";
import { feature } from "topojson-client";

let countries: GeoJSON.FeatureCollection | null = null;

export async function worldGeoJSON(): Promise<GeoJSON.FeatureCollection> {
  if (!countries) {
    const topo: any = (await import("world-atlas/countries-110m.json")).default;
    countries = feature(topo, topo.objects.countries) as unknown as GeoJSON.FeatureCollection;
    for (const f of countries.features) unwrapGeometry(f.geometry);
  }
  return countries;
}

/**
 * Natural Earth rings that cross the antimeridian jump from +180 to -180; drawn as is, their
 * edges streak across the whole map. Keep each ring continuous (longitudes past ±180 are fine).
 */
function unwrapRing(ring: number[][]): void {
  for (let i = 1; i < ring.length; i++) {
    const d = ring[i][0] - ring[i - 1][0];
    if (d > 180) ring[i][0] -= 360;
    else if (d < -180) ring[i][0] += 360;
  }
}

function unwrapGeometry(g: GeoJSON.Geometry | null): void {
  if (!g) return;
  if (g.type === "Polygon") g.coordinates.forEach(unwrapRing);
  else if (g.type === "MultiPolygon") g.coordinates.forEach((poly) => poly.forEach(unwrapRing));
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export async function baseStyle(): Promise<StyleSpecification> {
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  return {
    version: 8,
    sources: { world: { type: "geojson", data: await worldGeoJSON() } },
    layers: [
      { id: "sea", type: "background", paint: { "background-color": dark ? "#0f1f2e" : "#cfe3f1" } },
      { id: "land", type: "fill", source: "world", paint: { "fill-color": dark ? "#2b3038" : "#f1efe6" } },
      { id: "borders", type: "line", source: "world", paint: { "line-color": dark ? "#4a505c" : "#b9b4a4", "line-width": 0.7 } },
    ],
  };
}
export { cssVar };
