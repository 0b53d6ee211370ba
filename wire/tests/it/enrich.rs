//! Enrichment: URL parts, User-Agent facts, visitor hashing, clock correction.

use super::click_event;
use pathlight_wire::enrich::{
    Device, Enricher, VisitorHasher, parse_url, parse_user_agent, url_host,
};
use pathlight_wire::{Geo, Id, RequestContext};

const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";

#[test]
fn user_agents_map_to_devices() {
    let chrome = parse_user_agent(CHROME_MAC);
    assert_eq!(
        (chrome.browser.as_str(), chrome.os.as_str(), chrome.device),
        ("Chrome", "Mac OSX", Device::Desktop)
    );
    assert!(!chrome.is_bot);
    assert_eq!(parse_user_agent(IPHONE).device, Device::Mobile);
    assert_eq!(parse_user_agent(IPAD).device, Device::Tablet);
    for bot in [GOOGLEBOT, HEADLESS, "curl/8.5.0", ""] {
        let info = parse_user_agent(bot);
        assert!(info.is_bot && info.device == Device::Bot, "{bot:?}");
    }
}

#[test]
fn urls_split_into_host_path_and_campaign() {
    let u = parse_url(
        "https://Shop.Example:8443/catalog/shoes?utm_source=news&utm_medium=email&utm_campaign=w%20inter&x=1#/cart",
    );
    assert_eq!(u.host, "shop.example");
    assert_eq!(u.path, "/catalog/shoes");
    assert_eq!(
        u.query,
        "utm_source=news&utm_medium=email&utm_campaign=w%20inter&x=1"
    );
    assert_eq!(u.fragment, "/cart");
    assert_eq!(
        (
            u.utm_source.as_str(),
            u.utm_medium.as_str(),
            u.utm_campaign.as_str()
        ),
        ("news", "email", "w inter")
    );
    assert_eq!(parse_url("/catalog?foo=bar").path, "/catalog");
    assert_eq!(parse_url("/catalog?foo=bar").host, "");
    assert_eq!(parse_url("https://a.b").path, "/");
    assert_eq!(parse_url("https://user:pw@a.b/x").host, "a.b");
    assert_eq!(parse_url("http://[::1]/x").host, "[::1]");
    // The host a browser would go to: a backslash ends it as a slash does.
    assert_eq!(
        parse_url("https://evil.example\\@shop.example/").host,
        "evil.example"
    );
    for (url, host) in [
        ("https://Shop.Example:8443/x?y=//evil#z", "Shop.Example"),
        ("//evil.example/x", "evil.example"),
        ("https://shop.example//evil.example/x", "shop.example"),
        ("https://a@evil.example?x", "evil.example"),
        ("/catalog", ""),
        ("javascript:alert(1)", ""),
    ] {
        assert_eq!(url_host(url), host, "{url}");
    }
}

#[test]
fn visitor_ids_are_keyed_daily_and_per_site() {
    let ip = Some("203.0.113.9".parse().unwrap());
    let day = 1_767_261_600_000;
    let d = day / 86_400_000;
    let h = VisitorHasher::new(&[(d, [1; 16]), (d + 1, [2; 16])], [0; 16]);
    let v = h.visitor_id("demo", ip, CHROME_MAC, day);
    assert_eq!(
        v,
        h.visitor_id("demo", ip, CHROME_MAC, day + 3_600_000),
        "same day"
    );
    assert_ne!(
        v,
        h.visitor_id("demo", ip, CHROME_MAC, day + 86_400_000),
        "next day"
    );
    assert_ne!(v, h.visitor_id("other", ip, CHROME_MAC, day), "other site");
    let other_salt = VisitorHasher::new(&[(d, [3; 16])], [0; 16]);
    assert_ne!(
        v,
        other_salt.visitor_id("demo", ip, CHROME_MAC, day),
        "another salt"
    );
    // A day without a salt (forgotten, or never made) uses the fallback.
    let old = day - 30 * 86_400_000;
    let fallback = VisitorHasher::new(&[], [0; 16]).visitor_id("demo", ip, CHROME_MAC, old);
    assert_eq!(h.visitor_id("demo", ip, CHROME_MAC, old), fallback);
}

#[test]
fn enrichment_corrects_the_client_clock_and_keeps_no_ip() {
    let ctx = RequestContext {
        received_at: 1_767_261_700_000,
        ip: Some("198.51.100.7".parse().unwrap()),
        user_agent: Some(CHROME_MAC.into()),
        geo: Geo {
            country: "DE".into(),
            ..Geo::default()
        },
    };
    let hasher = VisitorHasher::new(&[], [7; 16]);
    let mut enricher = Enricher::new(&hasher, &ctx);
    let raw = click_event(1);
    // The client's clock is 95 s behind the server's.
    let sent_at = ctx.received_at - 95_000;
    let e = enricher.enrich("demo", Id([9; 16]), sent_at, raw.clone());
    assert_eq!(e.timestamp, raw.timestamp + 95_000);
    assert_eq!(e.url.path, "/catalog");
    assert_eq!(e.url.utm_campaign, "winter");
    assert_eq!(e.referrer_host, "www.google.com");
    assert_eq!(e.user_agent.browser, "Chrome");
    assert_eq!(e.geo.country, "DE");
    let text = serde_json::to_string(&e).unwrap();
    assert!(
        !text.contains("198.51.100.7"),
        "the IP must not survive enrichment"
    );
    // An event carrying its own User-Agent (imports) is judged by it.
    let mut bot = raw;
    bot.user_agent = Some(GOOGLEBOT.into());
    assert!(
        enricher
            .enrich("demo", Id([9; 16]), sent_at, bot)
            .user_agent
            .is_bot
    );
}
