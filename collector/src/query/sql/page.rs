//! `heatmap` and `elements`: one page's clicks, scroll depths and clicked elements, from
//! the heatmap and page marts or (`exact=true`) the events.

use super::*;

/// Clicks by page position, from raw events; the bins are the `heatmap_clicks` mart's.
pub(super) fn heatmap_points_sql() -> String {
    format!(
        "SELECT toFloat64({PX}) / 1000 AS fx, {PY} AS py, toUInt64(count()) AS n, fixed \
         FROM events FINAL WHERE {{where}} AND document_w > 0 GROUP BY fixed, fx, py ORDER BY n DESC, fixed, fx, py LIMIT 20000"
    )
}
pub(super) const HEATMAP_POINTS_MART: &str = "SELECT toFloat64(px) / 1000 AS fx, py, toUInt64(sum(clicks)) AS n, fixed \
     FROM heatmap_clicks WHERE {mart} GROUP BY fixed, fx, py ORDER BY n DESC, fixed, fx, py LIMIT 20000";
/// Clicks by position inside their element, from raw events; the bins are `heatmap_anchors`'.
pub(super) fn heatmap_anchored_sql() -> String {
    format!(
        "SELECT selector, toFloat64({RX}) / 100 AS fx, toFloat64({RY}) / 100 AS fy, toUInt64(count()) AS n \
         FROM events FINAL WHERE {{where}} AND selector != '' GROUP BY selector, fx, fy ORDER BY n DESC, selector, fx, fy LIMIT 20000"
    )
}
pub(super) const HEATMAP_ANCHORED_MART: &str = "SELECT selector, toFloat64(rx) / 100 AS fx, toFloat64(ry) / 100 AS fy, toUInt64(sum(clicks)) AS n \
     FROM heatmap_anchors WHERE {mart} GROUP BY selector, fx, fy ORDER BY n DESC, selector, fx, fy LIMIT 20000";
/// Each session's deepest scroll on the page. Without `FINAL`: a re-sent copy of an event
/// leaves a maximum as it is, and `FINAL` over unmerged parts is most of the cost.
pub(super) const SCROLL_DEPTHS: &str = "SELECT toUInt8(d) AS depth, toUInt64(count()) AS n FROM \
     (SELECT session_id, max(scroll_depth) AS d FROM events WHERE {where} GROUP BY session_id) \
     GROUP BY depth ORDER BY depth";
pub(super) const PAGE_VIEWS: &str = "SELECT toUInt64(count()) AS n FROM events FINAL WHERE {where}";
pub(super) const PAGE_VIEWS_MART: &str =
    "SELECT toUInt64(countMerge(views)) AS n FROM page_daily WHERE {mart}";
pub(super) const ELEMENTS: &str = "SELECT selector, any(element_id), any(tag), any(text), toUInt64(count()) AS clicks, \
     toUInt64(uniqExact(visitor_id)), toFloat64(avg(rel_x)), toFloat64(avg(rel_y)), toFloat64(0) \
     FROM events FINAL WHERE {where} AND selector != '' GROUP BY selector ORDER BY clicks DESC, selector LIMIT 500";
pub(super) const ELEMENTS_MART: &str = "SELECT selector, anyMerge(element_id), anyMerge(tag), anyMerge(text), toUInt64(countMerge(clicks)) AS n, \
     toUInt64(uniqExactMerge(clickers)), toFloat64(avgMerge(rel_x)), toFloat64(avgMerge(rel_y)), toFloat64(0) \
     FROM element_days WHERE {mart} GROUP BY selector ORDER BY n DESC, selector LIMIT 500";

/// `heatmap`: where a page was clicked.
#[derive(Debug, Serialize)]
pub struct Heatmap {
    /// Clicks counted.
    pub clicks: u64,
    /// Clicks by position: `x` as a fraction of the document width (so the viewer scales it to
    /// the width it renders at), `y` in page px (2 px bins); for clicks in a fixed or sticky
    /// context (`fixed` > 0: a menu bar, a chat button) a fraction of the viewport width and
    /// viewport px, where the element was on screen.
    pub points: Vec<Point>,
    /// Clicks by element and position inside it (1 % bins): the viewer places these on the
    /// element it finds by selector, so they stay right after reflow.
    pub anchored: Vec<Anchored>,
    /// Share of sessions whose deepest scroll on the page reached 0 %, 10 %, ... 100 %.
    pub scroll_reach: Vec<f64>,
    /// Rage clicks by element.
    pub rage: Vec<Frustration>,
    /// Dead clicks by element.
    pub dead: Vec<Frustration>,
}

/// A heatmap bin.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Point {
    /// Fraction of the document width.
    pub x: f64,
    /// Page px (viewport px when `fixed` > 0).
    pub y: i32,
    /// Clicks.
    pub n: u64,
    /// 0: in the page's flow; 1: in a `position: fixed` context; 2: `sticky`.
    pub fixed: u8,
}

/// An element-anchored bin.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Anchored {
    /// The element's selector.
    pub selector: String,
    /// Position inside the element, fractions.
    pub rel_x: f64,
    /// Position inside the element, fractions.
    pub rel_y: f64,
    /// Clicks.
    pub n: u64,
}

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct DepthCount {
    depth: u8,
    n: u64,
}

/// Builds the heatmap of one page.
pub async fn heatmap(client: &Client, f: &Filters) -> Result<Heatmap, clickhouse::error::Error> {
    let (points, anchored) = (heatmap_points_sql(), heatmap_anchored_sql());
    let layer = |name: &str| {
        f.layers
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == name))
    };
    let clicks = async {
        if !layer("clicks") {
            return Ok((Vec::new(), Vec::new()));
        }
        let mart = f.page_marts();
        tokio::try_join!(
            pick(client, f, mart, HEATMAP_POINTS_MART, &points, "click"),
            pick(client, f, mart, HEATMAP_ANCHORED_MART, &anchored, "click"),
        )
    };
    let scroll = async {
        if layer("scroll") {
            rows(client, SCROLL_DEPTHS, f, Some("scroll")).await
        } else {
            Ok(Vec::new())
        }
    };
    let frustrated = async {
        if layer("frustration") {
            crate::query::behaviour::frustration(client, f).await
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    // Independent queries: run together, so the answer takes the slowest, not the sum.
    let ((points, anchored), depths, (rage, dead)): (
        (Vec<Point>, Vec<Anchored>),
        Vec<DepthCount>,
        _,
    ) = tokio::try_join!(clicks, scroll, frustrated)?;
    let sessions: u64 = depths.iter().map(|d| d.n).sum();
    let scroll_reach = (0..=10u8)
        .map(|step| {
            let reached: u64 = depths
                .iter()
                .filter(|d| d.depth >= step * 10)
                .map(|d| d.n)
                .sum();
            if sessions == 0 {
                0.0
            } else {
                reached as f64 / sessions as f64
            }
        })
        .collect();
    Ok(Heatmap {
        clicks: points.iter().map(|p| p.n).sum(),
        points,
        anchored,
        scroll_reach,
        rage,
        dead,
    })
}

/// `elements`: per element of a page.
#[derive(Debug, Serialize)]
pub struct Elements {
    /// Page views of the page.
    pub views: u64,
    /// Clicked elements, most clicked first.
    pub elements: Vec<Element>,
}

/// One element's figures.
#[derive(Debug, Serialize, Deserialize, clickhouse::Row)]
pub struct Element {
    /// Selector.
    pub selector: String,
    /// `id` attribute.
    pub element_id: String,
    /// Tag.
    pub tag: String,
    /// Short text.
    pub text: String,
    /// Clicks.
    pub clicks: u64,
    /// Distinct visitors who clicked.
    pub clickers: u64,
    /// Average click position inside the element.
    pub avg_rel_x: f64,
    /// Average click position inside the element.
    pub avg_rel_y: f64,
    /// Clicks per page view (click-to-view conversion); set after the query.
    #[serde(default)]
    pub ctr: f64,
}

#[derive(Deserialize, clickhouse::Row)]
pub(super) struct One {
    n: u64,
}

/// Per-element clicks and click-to-view conversion on one page.
pub async fn elements(client: &Client, f: &Filters) -> Result<Elements, clickhouse::error::Error> {
    let (views, mut elements): (Vec<One>, Vec<Element>) = tokio::try_join!(
        pick(
            client,
            f,
            f.page_marts(),
            PAGE_VIEWS_MART,
            PAGE_VIEWS,
            "pageview"
        ),
        pick(client, f, f.page_marts(), ELEMENTS_MART, ELEMENTS, "click"),
    )?;
    let views = views.first().map_or(0, |o| o.n);
    for e in &mut elements {
        e.ctr = if views == 0 {
            0.0
        } else {
            e.clicks as f64 / views as f64
        };
    }
    Ok(Elements { views, elements })
}
