/** Short names for the generated OpenAPI types (schema.d.ts, `npm run api:types`). */
import type { components } from "./schema";

type S = components["schemas"];
export type PhotoSummary = S["PhotoSummary"];
export type PhotoDetail = S["PhotoDetail"] & Record<string, any>;
export type PhotoPage = S["PhotoPage"];
export type Tokens = S["Tokens"];
export type Album = S["Album"];
export type AlbumPage = S["AlbumPage"];
export type MonthCount = S["MonthCount"];
export type MonthPhotos = S["MonthPhotos"];
export type Points = S["Points"];
export type Suggestion = S["Suggestion"];
export type Person = S["Person"];
export type LabelOut = S["LabelOut"];
export type SharedPage = S["SharedPage"];
export type SharedPhoto = S["SharedPhoto"];
export type ErrorBody = S["ErrorBody"];

export interface MonthsAnswer {
  total: number;
  months: MonthCount[];
  undated: number;
}
