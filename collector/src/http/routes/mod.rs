//! What each route of [`crate::http::router::Route`] answers, one file per kind of client:
//! trackers (`batch`), edge workers (`relay`), dashboards and API clients (`query`,
//! `websocket`), browsers loading files (`files`), operators (`ops`).

pub mod batch;
pub mod files;
pub mod ops;
pub mod query;
pub mod relay;
pub mod websocket;
