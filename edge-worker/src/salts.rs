//! The visitor-id salts at the edge: the same random per-day salts the collectors use (the
//! `salts` table), so a visitor seen at the edge and at a collector on the same day gets the
//! same id, and ids stop being linkable once a day's salt is deleted. Read from ClickHouse
//! (queue and direct modes, creating today's salt and deleting old ones as a collector does) or
//! from the collector (`GET /v1/relay/salts`, relay mode), and kept per isolate for a minute.
//!
//! When the source cannot be reached and the isolate has no salt for today, events are hashed
//! with a random salt of this isolate: they are still stored, and their visitor ids link to
//! nothing, which errs on the side of privacy.

use crate::clickhouse;
use crate::settings::{Mode, Settings};
use pathlight_ingest::salts as sql;
use pathlight_wire::enrich::VisitorHasher;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Fetch, Headers, Method, Request, RequestInit};

const REFRESH_MS: u64 = 60_000;

struct Cached {
    fetched_at: u64,
    day: i64,
    hasher: Rc<VisitorHasher>,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(buf: &mut [u8]);
}

/// 16 random bytes from the runtime's CSPRNG.
pub fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    get_random_values(&mut salt);
    salt
}

/// The hasher for now (`now_ms`), refreshed from the salt source at most once a minute.
pub async fn hasher(settings: &Settings, now_ms: u64) -> Rc<VisitorHasher> {
    let today = (now_ms / 86_400_000) as i64;
    let fresh = CACHE.with_borrow(|c| {
        c.as_ref()
            .filter(|c| c.day == today && now_ms.saturating_sub(c.fetched_at) < REFRESH_MS)
            .map(|c| c.hasher.clone())
    });
    if let Some(h) = fresh {
        return h;
    }
    let hasher = match load(settings, today).await {
        Ok(salts) if salts.iter().any(|(d, _)| *d == today) => {
            Rc::new(VisitorHasher::new(&salts, random_salt()))
        }
        result => {
            if let Err(e) = result {
                worker::console_error!("visitor salts unavailable: {e}");
            }
            // Keep a salt of today we already had, otherwise this isolate's own; either way
            // the source is asked again in a minute, not on every request while it is away.
            CACHE
                .with_borrow(|c| {
                    c.as_ref()
                        .filter(|c| c.day == today)
                        .map(|c| c.hasher.clone())
                })
                .unwrap_or_else(|| Rc::new(VisitorHasher::new(&[], random_salt())))
        }
    };
    CACHE.set(Some(Cached {
        fetched_at: now_ms,
        day: today,
        hasher: hasher.clone(),
    }));
    hasher
}

async fn load(settings: &Settings, today: i64) -> Result<Vec<(i64, [u8; 16])>, String> {
    match (settings.mode, &settings.clickhouse, &settings.collector_url) {
        (Mode::Relay, _, Some(url)) => from_collector(url, &settings.relay_token).await,
        (_, Some(ch), _) => {
            let read = || async {
                clickhouse::run(
                    ch,
                    &(sql::select(today) + " FORMAT TabSeparated"),
                    None,
                    &[],
                )
                .await
                .map(|tsv| sql::parse(&tsv))
                .map_err(|f| f.message)
            };
            let mut salts = read().await?;
            if !salts.iter().any(|(d, _)| *d == today) {
                let salt = pathlight_ingest::hex::encode(&random_salt());
                clickhouse::run(ch, &sql::insert(today, &salt), None, &[])
                    .await
                    .map_err(|f| f.message)?;
                salts = read().await?;
                // A worker-only deployment has no collector to forget old salts.
                let old = clickhouse::run(ch, &sql::count_old(today), None, &[]).await;
                if old.is_ok_and(|n| n.trim() != "0") {
                    let _ = clickhouse::run(ch, &sql::delete_old(today), None, &[]).await;
                }
            }
            Ok(salts)
        }
        _ => Err("no salt source configured".into()),
    }
}

async fn from_collector(url: &str, token: &str) -> Result<Vec<(i64, [u8; 16])>, String> {
    let headers = Headers::new();
    headers
        .set("Authorization", &format!("Bearer {token}"))
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&format!("{url}/v1/relay/salts"), &init)
        .map_err(|e| e.to_string())?;
    let mut resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if resp.status_code() != 200 {
        return Err(format!("collector answered {}: {text}", resp.status_code()));
    }
    Ok(sql::parse(&text))
}
