//! `search`: search analytics from a site's custom events, named as the site names them
//! (`[sites.search]`, [`SearchConfig`]): the totals, the top queries, the refinements (which
//! query was searched again as which) and the items found through search.
//!
//! Each search is taken with what followed it in its session: the result clicks up to the
//! session's next search, and whether that next search refined it. Neither needs window
//! functions (ClickHouse 18.16 has none): a session's searches and clicks are gathered in
//! one array in time order, and each element sees its successor by index. Event and property
//! names reach ClickHouse as bound values, like every parameter.

use super::*;
use crate::config::SearchConfig;

/// One row per search: its session, its query, whether it found nothing (`z`), the result
/// clicks up to the session's next search (`c`), the sum and number of their known positions
/// (`ps`, `pn`), whether it was refined (`r`) and into what (`refined_to`).
///
/// Inside: each search or result click of a session (`k` 0 or 1), ordered by time (a search
/// before a click of the same millisecond); `ord` numbers the searches, a click taking the
/// number of the search before it (0 before the session's first search: not counted). A
/// search is refined when the session's next element is a search for another query within the
/// site's `refinement_secs`.
///
/// Binds, in order: the window (ms), the click event, the query property, the results
/// property (twice), the position property; then `{where}`; then the search and click events.
const SEARCHES: &str = "(SELECT session_id, ord, anyIf(q, k = 0) AS query, maxIf(zero, k = 0) AS z, \
       countIf(k = 1) AS c, sumIf(pos, k = 1 AND pos > 0) AS ps, countIf(k = 1 AND pos > 0) AS pn, \
       maxIf(refined, k = 0) AS r, anyIf(next_q, k = 0) AS refined_to FROM \
     (SELECT session_id, tupleElement(e, 2) AS k, tupleElement(e, 3) AS q, tupleElement(e, 4) AS zero, \
        tupleElement(e, 5) AS pos, o AS ord, \
        k = 0 AND i < length(seq) AND tupleElement(seq[i + 1], 2) = 0 \
          AND tupleElement(seq[i + 1], 1) - tupleElement(e, 1) <= ? AND tupleElement(seq[i + 1], 3) != q AS refined, \
        if(refined, tupleElement(seq[i + 1], 3), '') AS next_q FROM \
       (SELECT session_id, seq, arrayCumSum(arrayMap(x -> toUInt32(tupleElement(x, 2) = 0), seq)) AS ords FROM \
         (SELECT session_id, arraySort(x -> (tupleElement(x, 1), tupleElement(x, 2)), groupArray((ts, k, q, zero, pos))) AS seq FROM \
           (SELECT session_id, toUInt64(timestamp) * 1000 + timestamp_ms AS ts, toUInt8(toString(name) = ?) AS k, \
              visitParamExtractString(props, ?) AS q, \
              toUInt8(visitParamHas(props, ?) AND visitParamExtractFloat(props, ?) = 0) AS zero, \
              visitParamExtractFloat(props, ?) AS pos \
            FROM events FINAL WHERE {where} AND name IN (?, ?)) \
          WHERE (k = 0 AND q != '') OR (k = 1 AND (q != '' OR pos > 0)) \
          GROUP BY session_id)) \
      ARRAY JOIN seq AS e, ords AS o, arrayEnumerate(seq) AS i) \
    WHERE ord > 0 GROUP BY session_id, ord)";

/// The range's searches in all.
pub(super) const SEARCH_TOTALS: &str = "SELECT toUInt64(count()) AS searches, toUInt64(uniqExact(session_id)) AS sessions, \
     toUInt64(sum(c)) AS clicks, toFloat64(if(searches = 0, 0, countIf(c > 0) / searches)) AS ctr, \
     toFloat64(sum(ps) / sum(pn)) AS avg_position, toFloat64(if(searches = 0, 0, countIf(z = 1) / searches)) AS zero_result_rate, \
     toUInt64(countIf(r = 1)) AS refinements, toFloat64(if(searches = 0, 0, refinements / searches)) AS refinement_rate \
     FROM {searches}";

/// The 100 queries searched most.
pub(super) const SEARCH_QUERIES: &str = "SELECT query, toUInt64(count()) AS searches, toUInt64(sum(c)) AS clicks, \
     toFloat64(countIf(c > 0) / searches) AS ctr, toFloat64(sum(ps) / sum(pn)) AS avg_position, \
     toFloat64(countIf(z = 1) / searches) AS zero_result_rate, toFloat64(countIf(r = 1) / searches) AS refinement_rate \
     FROM {searches} GROUP BY query ORDER BY searches DESC, query LIMIT 100";

/// The 20 most frequent refinements, from one query to the next.
pub(super) const SEARCH_REFINEMENTS: &str = "SELECT query, refined_to, toUInt64(count()) AS n \
     FROM {searches} WHERE r = 1 GROUP BY query, refined_to ORDER BY n DESC, query, refined_to LIMIT 20";

/// Per item: result clicks on it, then its views, add-to-carts and purchases.
///
/// Binds, in order: the click, view, cart and purchase events, the item and query
/// properties, the position property; then `{where}`; then the four events.
pub(super) const SEARCH_ITEMS: &str = "SELECT item, toUInt64(countIf(n = ? AND found)) AS from_search, toUInt64(countIf(n = ?)) AS views, \
     toUInt64(countIf(n = ?)) AS carts, toUInt64(countIf(n = ?)) AS purchases, \
     toFloat64(if(views = 0, 0, carts / views)), toFloat64(if(views = 0, 0, purchases / views)) FROM \
     (SELECT toString(name) AS n, visitParamExtractString(props, ?) AS item, \
        visitParamExtractString(props, ?) != '' OR visitParamExtractFloat(props, ?) > 0 AS found \
      FROM events FINAL WHERE {where} AND name IN (?, ?, ?, ?)) \
     WHERE item != '' GROUP BY item ORDER BY from_search DESC, views DESC, item LIMIT 100";

/// Searches in all.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SearchTotals {
    /// Searches: search events with a query.
    pub searches: u64,
    /// Sessions with a search.
    pub sessions: u64,
    /// Result clicks credited to a search.
    pub clicks: u64,
    /// Share of searches followed by a result click.
    pub ctr: f64,
    /// Mean position of the clicked results (1 = first); null without a known position.
    pub avg_position: f64,
    /// Share of searches that found nothing.
    pub zero_result_rate: f64,
    /// Searches refined into another.
    pub refinements: u64,
    /// Share of searches refined.
    pub refinement_rate: f64,
}

/// A search query's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SearchQuery {
    /// The query as sent.
    pub query: String,
    /// Searches for it.
    pub searches: u64,
    /// Result clicks after them.
    pub clicks: u64,
    /// Share of them followed by a result click.
    pub ctr: f64,
    /// Mean position clicked (1 = first); null without a known position.
    pub avg_position: f64,
    /// Share of them that found nothing.
    pub zero_result_rate: f64,
    /// Share of them refined into another query.
    pub refinement_rate: f64,
}

/// A refinement: a search for `from` followed by one for `to`.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Refinement {
    /// The query refined.
    pub from: String,
    /// The query searched next.
    pub to: String,
    /// Times.
    pub count: u64,
}

/// An item's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct SearchItem {
    /// The item id.
    pub item: String,
    /// Result clicks on it.
    pub from_search: u64,
    /// Its views.
    pub views: u64,
    /// Its add-to-carts.
    pub add_to_cart: u64,
    /// Its purchases.
    pub purchases: u64,
    /// Add-to-cart per view.
    pub cart_rate: f64,
    /// Purchases per view.
    pub purchase_rate: f64,
}

/// `search`: the totals, per query, the refinements and per item.
#[derive(Debug, Serialize)]
pub struct Search {
    /// In all.
    pub totals: SearchTotals,
    /// Per query, most searched first.
    pub queries: Vec<SearchQuery>,
    /// The most frequent refinements.
    pub refinements: Vec<Refinement>,
    /// Per item.
    pub items: Vec<SearchItem>,
}

/// `sql` (one of the `SEARCH_*` over `{searches}`) for `f`, the site's names bound.
pub(super) fn search_query(client: &Client, sql: &str, f: &Filters) -> clickhouse::query::Query {
    let s: &SearchConfig = &f.search;
    let text = sql.replace("{searches}", SEARCHES);
    let pre = vec![
        Bind::N(u64::from(s.refinement_secs) * 1000),
        Bind::S(s.click_event.clone()),
        Bind::S(s.query_property.clone()),
        Bind::S(s.results_property.clone()),
        Bind::S(s.results_property.clone()),
        Bind::S(s.position_property.clone()),
    ];
    let post = vec![
        Bind::S(s.search_event.clone()),
        Bind::S(s.click_event.clone()),
    ];
    prepare_with(client, &text, f, Some("custom"), pre, post)
}

/// [`SEARCH_ITEMS`] for `f`, the site's names bound.
pub(super) fn search_items_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    let s: &SearchConfig = &f.search;
    let events = [
        &s.click_event,
        &s.view_event,
        &s.cart_event,
        &s.purchase_event,
    ];
    let mut pre: Vec<Bind> = events.iter().map(|e| Bind::S((*e).clone())).collect();
    pre.extend([
        Bind::S(s.item_property.clone()),
        Bind::S(s.query_property.clone()),
        Bind::S(s.position_property.clone()),
    ]);
    let post = events.iter().map(|e| Bind::S((*e).clone())).collect();
    prepare_with(client, SEARCH_ITEMS, f, Some("custom"), pre, post)
}

/// Search analytics.
pub async fn search(client: &Client, f: &Filters) -> Result<Search, clickhouse::error::Error> {
    let (totals, queries, refinements, items) = tokio::try_join!(
        search_query(client, SEARCH_TOTALS, f).fetch_one(),
        search_query(client, SEARCH_QUERIES, f).fetch_all(),
        search_query(client, SEARCH_REFINEMENTS, f).fetch_all(),
        search_items_query(client, f).fetch_all(),
    )?;
    Ok(Search {
        totals,
        queries,
        refinements,
        items,
    })
}
