// @pathlight/tracker: the same WebAssembly tracker as the <script> embed, as an ES module.
import initWasm, * as wasm from "./pathlight.js";
import { METHODS, install } from "./api.js";

let api = null;
const queue = [];
const later = (m) => (...args) => (api ? api[m](...args) : void queue.push([m, args]));

/** Starts tracking; resolves to false when tracking stays off (DNT/GPC, opted out). */
export async function init(options) {
  if (!api) {
    await initWasm({ module_or_path: options.wasmUrl ?? new URL("./pathlight_bg.wasm", import.meta.url) });
    api = install(wasm, options);
    for (const [m, args] of queue.splice(0)) api[m](...args);
  }
  return api.started;
}

export const [track, page, flush, optOut, optIn] = METHODS.map(later);
