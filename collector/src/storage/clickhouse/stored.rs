//! Which of some rows' events ClickHouse has already. Asked before inserting rows that may
//! have been inserted before — a spool segment left by the last run, a batch a tracker sent
//! again — because the marts' materialized views count every insert, while `events` keeps
//! one row per event id only once it merges.

use super::EventRow;
use clickhouse::Client;
use std::collections::HashSet;

/// Removes from `rows` those whose event ids `events` has (for the same site), and returns
/// how many it removed.
pub async fn drop_stored(
    client: &Client,
    rows: &mut Vec<EventRow>,
) -> clickhouse::error::Result<usize> {
    let mut stored = HashSet::new();
    let mut sites: Vec<&str> = rows.iter().map(|r| r.site_id.as_str()).collect();
    sites.sort_unstable();
    sites.dedup();
    for site in sites {
        let of_site = rows.iter().filter(|r| r.site_id == site);
        let (lo, hi) = of_site.clone().fold((u32::MAX, 0), |(lo, hi), r| {
            (lo.min(r.timestamp), hi.max(r.timestamp))
        });
        let ids: Vec<String> = of_site.map(|r| r.event_id.to_string()).collect();
        // The site leads the table's key and the day follows each event kind in it, so this
        // reads the site's ranges of those days, not the table.
        let found: Vec<String> = client
            .query(
                "SELECT toString(event_id) FROM events WHERE site_id = ? \
                 AND toDate(timestamp) BETWEEN toDate(toDateTime(?)) AND toDate(toDateTime(?)) \
                 AND has(?, toString(event_id))",
            )
            .bind(site)
            .bind(lo)
            .bind(hi)
            .bind(&ids)
            .fetch_all()
            .await?;
        stored.extend(found.into_iter().map(|id| (site.to_owned(), id)));
    }
    let before = rows.len();
    rows.retain(|r| !stored.contains(&(r.site_id.clone(), r.event_id.to_string())));
    Ok(before - rows.len())
}
