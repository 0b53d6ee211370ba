/** Options of {@link init}. */
export interface InitOptions {
  /** Site id registered in the collector's `[[sites]]`. */
  site: string;
  /** Batch endpoint, e.g. `https://collector.example.com/v1/batch`. */
  endpoint: string;
  /** URL of `pathlight_bg.wasm`; default: beside this module (bundlers may need it explicit). */
  wasmUrl?: string | URL;
  /** Stay off when Do-Not-Track or Global Privacy Control is set. Default `true`. */
  respectDnt?: boolean;
  /** Send once this many events are buffered. Default 20. */
  flushEvents?: number;
  /** Send buffered events at least this often, ms. Default 1000 (a click is queryable within ~2 s). */
  flushMs?: number;
}

/** A custom property value: flat scalars only. */
export type PropValue = string | number | boolean | null;

/** Starts tracking: page views (SPA routes too), clicks, scroll depth, visible time.
 *  Resolves to `false` when tracking stays off (DNT/GPC, or the visitor opted out). */
export function init(options: InitOptions): Promise<boolean>;
/** Records a custom event. Calls before `init` resolves are queued.
 *  Search analytics reads `search` {query, results}, `search_result_click`
 *  {query, position, item_id}, and `view_item` / `add_to_cart` / `purchase` {item_id}. */
export function track(name: string, props?: Record<string, PropValue>): void;
/** Names the signed-in user: this and later page loads' events carry `userId`, and `traits`
 *  (flat values, replacing the user's earlier ones as a whole) are stored for the user
 *  timeline and the session explorer. `null` forgets the user (sign-out). Does nothing when
 *  tracking is off (DNT/GPC, or the visitor opted out). Calls before `init` resolves are queued. */
export function identify(userId: string | null, traits?: Record<string, PropValue>): void;
/** Records a page view now (navigation through `history` is followed automatically). */
export function page(): void;
/** Sends buffered events now. */
export function flush(): void;
/** Stops tracking in this browser, persistently, and drops unsent events. */
export function optOut(): void;
/** Undoes {@link optOut} from the next page load on. */
export function optIn(): void;
