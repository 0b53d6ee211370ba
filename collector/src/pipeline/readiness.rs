//! Readiness: whether this collector can take writes now, and the state of each component it
//! relies on, for `/readyz`. Writes need exactly one of them: NATS in broker mode, else the
//! spool when there is one, else ClickHouse. Only that one makes the collector unready; the
//! others are reported (a ClickHouse that is away while the spool takes the writes shows as
//! `down`, with the spool's backlog growing) but a load balancer should keep sending to it.

use crate::metrics::StreamLabel;
use crate::storage::clickhouse::health;
use crate::storage::spool::Backlog;
use serde::Serialize;

/// The answer of `/readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready`, `not_ready` (the component writes need is unreachable) or `stopping` (shutting
    /// down: in-flight requests are being answered, new ones belong elsewhere).
    pub status: &'static str,
    /// The component acknowledged writes go to: `clickhouse`, `spool` or `nats`.
    pub writes_to: &'static str,
    /// The components that make the collector unready (empty when ready).
    pub unavailable: Vec<&'static str>,
    /// Every component's state.
    pub components: Components,
}

impl Readiness {
    /// Whether the collector takes writes.
    pub fn ready(&self) -> bool {
        self.status == "ready"
    }
}

/// The components the collector relies on.
#[derive(Debug, Serialize)]
pub struct Components {
    /// Always there: queries, salts and (without spool or broker) writes need it.
    pub clickhouse: State,
    /// With `spool.dir` set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolState>,
    /// In broker mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsState>,
}

/// A component's state: `up` or `down`.
#[derive(Debug, Serialize)]
pub struct State {
    /// `up` or `down`.
    pub state: &'static str,
}

/// The spool's state and what it holds for ClickHouse.
#[derive(Debug, Serialize)]
pub struct SpoolState {
    /// `up`: it is local disk, written by this process; `full`: at its cap (`max_bytes`) or
    /// its disk below `min_free_bytes`, refusing writes until it ships some to ClickHouse.
    pub state: &'static str,
    /// Acknowledged events waiting for ClickHouse.
    pub backlog: Backlog,
}

/// NATS's state, and the stream rows go to.
#[derive(Debug, Serialize)]
pub struct NatsState {
    /// `up` or `down`.
    pub state: &'static str,
    /// `broker.stream`.
    pub stream: String,
}

fn state(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

impl super::Pipeline {
    /// Each component's state now, read from what the sink, spool and broker client keep (no
    /// I/O: probes may come often); the `pathlight_nats_up` gauge is set on the way.
    pub fn readiness(&self) -> Readiness {
        let metrics = self.metrics();
        let clickhouse_up = health::is_up(metrics);
        let nats = self.publisher.as_ref().map(|p| {
            let up = p.connected();
            metrics
                .nats_up
                .get_or_create(&StreamLabel {
                    stream: p.stream().to_owned(),
                })
                .set(i64::from(up));
            NatsState {
                state: state(up),
                stream: p.stream().to_owned(),
            }
        });
        let spool = self.spool.as_ref().map(|s| SpoolState {
            state: if s.refusing() { "full" } else { "up" },
            backlog: s.backlog(),
        });
        let (writes_to, writable) = match (&nats, &spool) {
            (Some(n), _) => ("nats", n.state == "up"),
            (None, Some(s)) => ("spool", s.state == "up"),
            (None, None) => ("clickhouse", clickhouse_up),
        };
        let stopping = *self.stopping.borrow();
        Readiness {
            status: match (stopping, writable) {
                (true, _) => "stopping",
                (false, true) => "ready",
                (false, false) => "not_ready",
            },
            writes_to,
            unavailable: if writable {
                Vec::new()
            } else {
                vec![writes_to]
            },
            components: Components {
                clickhouse: State {
                    state: state(clickhouse_up),
                },
                spool,
                nats,
            },
        }
    }
}
