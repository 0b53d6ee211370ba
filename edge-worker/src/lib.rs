//! Pathlight's edge collector as a Cloudflare Worker (issue 5 fills it in).
//!
//! # The path of an event through the worker
//!
//! `POST /v1/batch` at the edge is decoded and validated by `pathlight_wire` exactly as the
//! collector does, enriched with the same `pathlight_wire::enrich` code plus Cloudflare's
//! request data (country, colo, ASN), and forwarded to a collector or straight to ClickHouse.
