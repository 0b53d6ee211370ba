// @pathlight/tracker: the same WebAssembly tracker as the <script> embed, as an ES module.
import { initSync } from "./pathlight.js";
import { METHODS, compile, install } from "./host.js";

let api = null;
const queue = [];
const later = (m) => (...args) => (api ? api[m](...args) : void queue.push([m, args]));

/** Starts tracking; resolves to false when tracking stays off (DNT/GPC, opted out). */
export async function init(options) {
  if (!api) {
    initSync({ module: await compile(options.wasmUrl ?? new URL("./pathlight_bg.wasm", import.meta.url)) });
    api = install(options);
    for (const [m, args] of queue.splice(0)) api[m](...args);
  }
  return api.started;
}

export const [track, page, flush, optOut, optIn, identify] = METHODS.map(later);
