//! The explorer's lists: `actions`, `patterns`, a user's events, `export` and `realtime`.

use super::*;

pub(super) const EXPORT: &str = "SELECT toString(event_id) AS event_id, toString(event_type) AS event_type, \
     toUInt64(timestamp) * 1000 + timestamp_ms AS timestamp_ms, session_id, toString(visitor_id) AS visitor_id, user_id, \
     url, path, referrer, title, viewport_w, viewport_h, document_w, document_h, x, y, element_id, selector, tag, text, \
     href, rel_x, rel_y, scroll_depth, visible_ms, name, props, browser, os, toString(device) AS device, country, \
     event_title \
     FROM events FINAL WHERE {where} ORDER BY timestamp, timestamp_ms, event_id";

/// The export query (all kinds, or `event_type`'s; bots excluded) for `f`.
pub fn export(client: &Client, f: &Filters) -> clickhouse::query::Query {
    prepare(client, EXPORT, f, f.event_type.as_deref())
}

pub(super) const REALTIME: &str = "SELECT toUInt64(uniqExact(visitor_id)), toUInt64(countIf(event_type = 'pageview')), toUInt64(count()) \
     FROM events WHERE site_id = ? AND timestamp >= now() - 300 AND is_bot = 0";

/// `realtime`: the last five minutes.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Realtime {
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Events.
    pub events: u64,
}

/// Visitors and events of the last five minutes (server clock), whatever the date filters.
pub async fn realtime(client: &Client, f: &Filters) -> Result<Realtime, clickhouse::error::Error> {
    client.query(REALTIME).bind(&f.site).fetch_one().await
}

/// The live feed's recent figures: visitors of the last 5 minutes (as `realtime` counts them),
/// and the last 30 minutes' visitors, page views and events. 30 minutes of one site's events
/// in the key's order: as cheap as `realtime`'s 5, a few times over.
pub(super) const LIVE_RECENT: &str = "SELECT toUInt64(uniqExactIf(visitor_id, timestamp >= now() - 300)), \
     toUInt64(uniqExact(visitor_id)), toUInt64(countIf(event_type = 'pageview')), toUInt64(count()) \
     FROM events WHERE site_id = ? AND timestamp >= now() - 1800 AND is_bot = 0";

/// The live feed's today (the server's day, as `traffic_daily` keeps days): the site's row of
/// the traffic mart, whatever the day's size. Distinct visitors are its HLL estimate.
pub(super) const LIVE_TODAY: &str = "SELECT toUInt64(uniqHLL12Merge(visitors)), toUInt64(countIfMerge(pageviews)), \
     toUInt64(countIfMerge(events)) FROM traffic_daily WHERE site_id = ? AND dim = 0 AND day = today()";

/// Visitors, page views and events of a span.
#[derive(Debug, Default, Serialize, Deserialize, clickhouse::Row)]
pub struct Counts {
    /// Distinct visitors.
    pub visitors: u64,
    /// Page views.
    pub pageviews: u64,
    /// Events.
    pub events: u64,
}

/// What a live feed is told when it connects: the site's figures now.
#[derive(Debug, Default, Serialize)]
pub struct LiveSnapshot {
    /// Visitors of the last 5 minutes: the current visitors.
    pub visitors: u64,
    /// The last 30 minutes.
    pub last_30_min: Counts,
    /// Today so far (distinct visitors estimated, as the dashboard's today).
    pub today: Counts,
}

/// The site's [`LiveSnapshot`].
pub async fn live_snapshot(
    client: &Client,
    site: &str,
) -> Result<LiveSnapshot, clickhouse::error::Error> {
    let recent = client
        .query(LIVE_RECENT)
        .bind(site)
        .fetch_one::<(u64, u64, u64, u64)>();
    let today = client.query(LIVE_TODAY).bind(site).fetch_one::<Counts>();
    let ((visitors, v30, pv30, e30), today) = tokio::try_join!(recent, today)?;
    Ok(LiveSnapshot {
        visitors,
        last_30_min: Counts {
            visitors: v30,
            pageviews: pv30,
            events: e30,
        },
        today,
    })
}

/// Visitors of the last 5 minutes.
pub async fn current_visitors(
    client: &Client,
    site: &str,
) -> Result<u64, clickhouse::error::Error> {
    client
        .query(REALTIME)
        .bind(site)
        .fetch_one::<(u64, u64, u64)>()
        .await
        .map(|r| r.0)
}

/// `actions`: the most used actions (clicked elements and custom events) per page.
pub(super) const ACTIONS: &str = "SELECT concat(toString(event_type), ' ', if(event_type = 'custom', toString(name), selector)) AS action, path, \
     toUInt64(count()) AS count, toUInt64(uniqExact(session_id)) AS sessions \
     FROM events FINAL WHERE {where} AND event_type IN ('click', 'custom') \
     GROUP BY action, path ORDER BY count DESC, action, path LIMIT 100";

/// An action and how often it was done.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Action {
    /// `click <selector>` or `custom <name>`.
    pub action: String,
    /// Page.
    pub path: String,
    /// Times done.
    pub count: u64,
    /// Sessions it was done in.
    pub sessions: u64,
}

/// Most used actions.
pub async fn actions(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Action>, clickhouse::error::Error> {
    rows(client, ACTIONS, f, None).await
}

/// `patterns`: the most frequent sequences of 2 to 5 consecutive actions within sessions
/// (an action is `kind:path:element-or-name`), by the number of sessions they occur in.
pub(super) const PATTERNS: &str = "SELECT gram, toUInt8(length(gram)) AS n, toUInt64(count()) AS occurrences, toUInt64(uniqExact(session_id)) AS sessions FROM \
     {grams} GROUP BY gram HAVING sessions >= 2 ORDER BY sessions DESC, occurrences DESC, n DESC, gram LIMIT 50";
/// Every session's sequences of 2 to 5 consecutive actions (`gram`), one row each time one
/// occurs. `groupUniqArray` over `events` (not `FINAL`): see [`rage_bursts_sql`].
pub(in crate::query) const PATTERN_GRAMS: &str = "(SELECT session_id, arraySlice(a, i, k) AS gram FROM \
       (SELECT session_id, a, arrayJoin([2, 3, 4, 5]) AS k FROM \
         (SELECT session_id, arrayMap(v -> v.2, arraySort(v -> v.1, groupUniqArray((toUInt64(timestamp) * 1000 + timestamp_ms, \
            concat(toString(event_type), ':', path, ':', if(event_type = 'custom', toString(name), selector)))))) AS a \
          FROM events WHERE {where} AND event_type IN ('pageview', 'click', 'custom') GROUP BY session_id)) \
      ARRAY JOIN arrayFilter(i -> i + k - 1 <= length(a), arrayEnumerate(a)) AS i)";

pub(super) fn patterns_sql() -> String {
    PATTERNS.replace("{grams}", PATTERN_GRAMS)
}

/// A frequent action sequence.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Pattern {
    /// The actions, in order.
    pub actions: Vec<String>,
    /// Its length (2–5).
    pub n: u8,
    /// Times it occurred.
    pub occurrences: u64,
    /// Sessions it occurred in (at least 2).
    pub sessions: u64,
}

/// Frequent sequences, and the sessions that repeat one (stuck loops, from `anomalies`).
#[derive(Debug, Serialize)]
pub struct Patterns {
    /// Sequences shared by at least two sessions, most widespread first.
    pub frequent: Vec<Pattern>,
    /// Sessions stuck in a loop, with its severity (loops found).
    pub loops: Vec<Anomaly>,
    /// Whether `frequent` was summed from each day's most widespread sequences (the rollup,
    /// `behaviour.rs`) rather than counted over every session.
    pub approximate: bool,
}

/// Sequences shared by at least two sessions, from the events.
pub(in crate::query) async fn frequent(
    client: &Client,
    f: &Filters,
) -> Result<Vec<Pattern>, clickhouse::error::Error> {
    rows::<Pattern>(client, &patterns_sql(), f, None).await
}

/// Finds patterns.
pub async fn patterns(client: &Client, f: &Filters) -> Result<Patterns, clickhouse::error::Error> {
    let (frequent, sessions) = tokio::try_join!(frequent(client, f), anomalous(client, f))?;
    let loops = sessions.into_iter().filter(|s| s.loops > 0).collect();
    Ok(Patterns {
        frequent,
        loops,
        approximate: false,
    })
}

/// `users/{id}/events`: a known user's events across sessions, oldest first, paged.
pub(super) const USER_EVENTS: &str = "SELECT toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, session_id, path, selector, toString(name) \
     FROM events FINAL WHERE {where} AND user_id = ? ORDER BY ts, event_id LIMIT ?, ?";

/// One event of a user's timeline.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct UserEvent {
    /// Kind.
    pub event_type: String,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Session.
    pub session_id: String,
    /// Page.
    pub path: String,
    /// Clicked element.
    pub selector: String,
    /// Custom event name.
    pub name: String,
}

/// `users/{id}/events` and `sessions`: the latest traits of some of the site's users
/// (`identify`, `storage/clickhouse/users.rs`). `argMax` rather than `FINAL`: the same answer
/// before the rows of a user have merged, and on 18.16 too.
pub(super) const USER_TRAITS: &str = "SELECT user_id, argMax(traits, updated_ms), max(updated_ms) FROM users \
     WHERE site_id = ? AND has(?, user_id) GROUP BY user_id";

#[derive(Deserialize, clickhouse::Row)]
struct TraitsRow {
    user_id: String,
    traits: String,
    updated_ms: u64,
}

pub(super) fn traits_query(
    client: &Client,
    site: &str,
    users: &[String],
) -> clickhouse::query::Query {
    client.query(USER_TRAITS).bind(site).bind(users)
}

/// The latest traits of each of `users` that has some, as JSON objects, with when they were
/// received (ms).
pub(super) async fn latest_traits(
    client: &Client,
    site: &str,
    users: &[String],
) -> Result<std::collections::HashMap<String, (serde_json::Value, u64)>, clickhouse::error::Error> {
    if users.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<TraitsRow> = traits_query(client, site, users).fetch_all().await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let traits = serde_json::from_str(&r.traits).ok()?;
            Some((r.user_id, (traits, r.updated_ms)))
        })
        .collect())
}

/// `users/{id}/events`: a user's events, and what the site said of them.
#[derive(Debug, Serialize)]
pub struct UserTimeline {
    /// The user.
    pub user_id: String,
    /// Their latest traits (`identify`), an object; null when the site gave none.
    pub traits: Option<serde_json::Value>,
    /// When those traits were received, ms since the epoch; null without traits.
    pub traits_updated_ms: Option<u64>,
    /// A page of their events, oldest first.
    pub events: Vec<UserEvent>,
}

pub(super) fn user_events_query(
    client: &Client,
    f: &Filters,
    user: &str,
) -> clickhouse::query::Query {
    let post = vec![
        Bind::S(user.to_owned()),
        Bind::U(f.offset),
        Bind::U(f.limit),
    ];
    prepare_with(client, USER_EVENTS, f, None, Vec::new(), post)
}

/// A page of a user's events, with their latest traits.
pub async fn user_events(
    client: &Client,
    f: &Filters,
    user: &str,
) -> Result<UserTimeline, clickhouse::error::Error> {
    let users = [user.to_owned()];
    let (events, mut traits) = tokio::try_join!(
        user_events_query(client, f, user).fetch_all(),
        latest_traits(client, &f.site, &users)
    )?;
    let (traits, traits_updated_ms) = traits.remove(user).unzip();
    Ok(UserTimeline {
        user_id: user.to_owned(),
        traits,
        traits_updated_ms,
        events,
    })
}

/// `timeline`: the site's events, newest first, a page of them. A stored duplicate (a
/// re-sent batch not merged yet) drops out by `LIMIT 1 BY event_id`, not `FINAL` (see
/// [`SESSION_EVENTS`]). The order is total (time, then id), so a page is the same however
/// often it is asked, and `until` (ms, bound after `{where}` and the kind) keeps events stored
/// later off the pages that follow.
pub(super) const TIMELINE: &str = "SELECT toString(event_id) AS id, toString(event_type), toUInt64(timestamp) * 1000 + timestamp_ms AS ts, \
     session_id, toString(visitor_id), user_id, path, selector, toString(name), props \
     FROM events WHERE {where}{until} ORDER BY ts DESC, id DESC LIMIT 1 BY id LIMIT ?, ?";

/// One event of the timeline.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct TimelineEvent {
    /// The event's id.
    pub event_id: String,
    /// Kind.
    pub event_type: String,
    /// Time, ms since the epoch.
    pub ts: u64,
    /// Session.
    pub session_id: String,
    /// Visitor id (a daily hash), as text: it does not fit a JavaScript number.
    pub visitor_id: String,
    /// The site's user id, if identified.
    pub user_id: String,
    /// Page.
    pub path: String,
    /// Clicked element.
    pub selector: String,
    /// Custom event name.
    pub name: String,
    /// Custom properties, a JSON object as text (empty: none); an object in the answer.
    #[serde(skip_serializing)]
    pub props: String,
}

/// `timeline`: a page of the site's events, newest first.
#[derive(Debug, Serialize)]
pub struct Timeline {
    /// The page.
    pub events: Vec<serde_json::Value>,
    /// The bound the pages share: `until` as given, else the time of this answer (ms). Ask
    /// the next pages with it, so that events stored meanwhile do not shift them.
    pub until_ms: u64,
    /// `offset` of the next page; null after the last.
    pub next_offset: Option<u32>,
}

pub(super) fn timeline_query(client: &Client, f: &Filters) -> clickhouse::query::Query {
    let mut post = Vec::new();
    let until = match f.until {
        Some(ms) => {
            post.push(Bind::N(ms));
            " AND toUInt64(timestamp) * 1000 + timestamp_ms <= ?"
        }
        None => "",
    };
    post.extend([Bind::U(f.offset), Bind::U(f.limit)]);
    let sql = TIMELINE.replace("{until}", until);
    prepare_with(client, &sql, f, f.event_type.as_deref(), Vec::new(), post)
}

/// A page of the timeline. The newest events are on the last days, so the range is read from
/// its last day back, the span doubling, until it holds the page or is whole: a busy site's
/// first pages read a day of events, not the month.
pub async fn timeline(client: &Client, f: &Filters) -> Result<Timeline, clickhouse::error::Error> {
    let until_ms = f
        .until
        .unwrap_or_else(|| crate::dates::now_ms().max(0) as u64);
    let (from, to) = (days_of(&f.from), days_of(&f.to));
    let mut span = 0;
    let rows: Vec<TimelineEvent> = loop {
        let lo = (to - span).max(from);
        let part = Filters {
            from: civil(lo),
            ..f.clone()
        };
        let rows: Vec<TimelineEvent> = timeline_query(client, &part).fetch_all().await?;
        if rows.len() >= f.limit as usize || lo <= from {
            break rows;
        }
        span = span * 2 + 1;
    };
    let next_offset = (rows.len() >= f.limit as usize).then(|| f.offset + f.limit);
    let events = rows
        .into_iter()
        .map(|e| {
            let props: serde_json::Value = serde_json::from_str(&e.props)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
            let mut v = serde_json::to_value(&e).unwrap_or_default();
            v["props"] = props;
            v
        })
        .collect();
    Ok(Timeline {
        events,
        until_ms,
        next_offset,
    })
}

/// `top`: the values of a custom property (`props`) by how many events carried each, with
/// their distinct visitors. A text value is compared as its text, any other (a number, a
/// boolean, null) as its JSON. The property's name is bound (before `{where}`: thrice, then
/// once after it, then the limit); a duplicate drops out by `LIMIT 1 BY event_id`, over only
/// the events carrying the property.
pub(super) const TOP_PROPERTY: &str = "SELECT v AS value, toUInt64(count()) AS count, toUInt64(uniqExact(visitor_id)) AS visitors FROM \
     (SELECT if(startsWith(visitParamExtractRaw(props, ?), '\"'), visitParamExtractString(props, ?), visitParamExtractRaw(props, ?)) AS v, \
        visitor_id FROM events WHERE {where} AND visitParamHas(props, ?) LIMIT 1 BY event_id) \
     GROUP BY value ORDER BY count DESC, value LIMIT ?";

/// A value of a property and how often it was sent.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct PropertyValue {
    /// The value: the text of a text value, the JSON of any other.
    pub value: String,
    /// Events that carried it.
    pub count: u64,
    /// Distinct visitor ids among them.
    pub visitors: u64,
}

/// `top`: a property's most sent values.
#[derive(Debug, Serialize)]
pub struct Top {
    /// The property.
    pub property: String,
    /// Its values, most sent first (ties by value), at most `limit`.
    pub values: Vec<PropertyValue>,
}

pub(super) fn top_property_query(
    client: &Client,
    f: &Filters,
    property: &str,
) -> clickhouse::query::Query {
    let p = || Bind::S(property.to_owned());
    prepare_with(
        client,
        TOP_PROPERTY,
        f,
        f.event_type.as_deref(),
        vec![p(), p(), p()],
        vec![p(), Bind::U(f.limit)],
    )
}

/// The most sent values of `property`.
pub async fn top_property(
    client: &Client,
    f: &Filters,
    property: &str,
) -> Result<Top, clickhouse::error::Error> {
    Ok(Top {
        property: property.to_owned(),
        values: top_property_query(client, f, property).fetch_all().await?,
    })
}
