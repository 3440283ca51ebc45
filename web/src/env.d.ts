/// <reference types="vite/client" />
declare module "*.vue" {
  import type { DefineComponent } from "vue";
  const component: DefineComponent<object, object, unknown>;
  export default component;
}
declare module "justified-layout" {
  interface Box { aspectRatio: number; top: number; left: number; width: number; height: number }
  interface Result { containerHeight: number; widowCount: number; boxes: Box[] }
  interface Options {
    containerWidth?: number; containerPadding?: number | { top: number; right: number; bottom: number; left: number };
    boxSpacing?: number | { horizontal: number; vertical: number }; targetRowHeight?: number;
    targetRowHeightTolerance?: number; maxNumRows?: number; forceAspectRatio?: boolean | number;
    showWidows?: boolean; fullWidthBreakoutRowCadence?: boolean | number; widowLayoutStyle?: "left" | "justify" | "center";
  }
  export default function justifiedLayout(input: number[] | { width: number; height: number }[], options?: Options): Result;
}
