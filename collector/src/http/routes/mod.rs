//! What each route of [`crate::http::router::Route`] answers, one file per kind of client:
//! trackers (`batch`, and `identify`, which sites' servers call too), edge workers (`relay`),
//! dashboards and API clients (`query`, `websocket`), browsers loading files (`files`),
//! operators (`ops`), people signed in (`auth`, their account; `manage`, sites, keys, members
//! and shared links, which invitations and shared links also open without an account).

pub mod auth;
pub mod batch;
pub mod files;
pub mod identify;
pub mod manage;
pub mod ops;
pub mod query;
pub mod relay;
pub mod websocket;
