//! Which User-Agents are automated clients. [`super::parse_user_agent`] asks [`is_automated`]
//! once per distinct User-Agent of a batch, beside woothee's crawler category.
//!
//! Three sources, compiled into one matcher:
//! - a maintained public crawler list, `wire/data/crawler-user-agents.txt`: the patterns of
//!   monperrus/crawler-user-agents (MIT; the file carries the licence and the upstream commit).
//!   `scripts/update-bot-list.sh` regenerates it from a snapshot of that repository; it is never
//!   edited by hand. The script drops an upstream pattern that matches one of the real browsers
//!   pinned in `wire/data/browser-user-agents.tsv` (the file's header says which and why);
//! - markers of headless browsers and automation drivers, HTTP libraries, and the generic words
//!   crawlers name themselves with ([`MARKERS`]; `bot` only as a word or a name's ending);
//! - a contact URL or e-mail address, which crawlers put in their User-Agent by convention and
//!   browsers do not.
//!
//! Most list patterns are a few plain strings: those, the markers, and for each of the two
//! dozen real regexes the strings one of its matches must start with, go into one
//! Aho-Corasick automaton. A User-Agent is scanned once whatever the list's length, and a
//! regex runs only where its strings were found. One regex of everything was tried first: its
//! lazy DFA ran out of cache on the 1,500 alternatives and took ~50 µs per User-Agent.
//!
//! Android browsers put the device's model in their User-Agent, and models are named anything
//! ("CUBOT", "HTC Butterfly", "Spider 8", "POWER BOT"): a match inside that one field does not
//! count ([`device_model`]). Crawlers that pose as Android phones name themselves elsewhere.

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::Extractor;
use std::sync::OnceLock;

/// The generated crawler list: `#` comment lines (source, commit, licence, what was dropped),
/// then one pattern per line.
const CRAWLER_LIST: &str = include_str!("../../data/crawler-user-agents.txt");

/// Case-insensitive substrings of automated clients' User-Agents, beyond the list: what headless
/// browsers, automation drivers and page-speed tools send by default, HTTP libraries, and the
/// generic words crawlers give themselves.
const MARKERS: &[&str] = &[
    // Headless browsers and automation (`HeadlessChrome`, Playwright's and Puppeteer's default).
    "headless",
    "phantomjs",
    "slimerjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "cypress/",
    "htmlunit",
    "jsdom/",
    // Page-speed and uptime tools that load pages in a real engine, and link previews.
    "lighthouse",
    "ptst/",
    "gtmetrix",
    "pingdom",
    "uptime",
    "monitor",
    "prerender",
    "preview",
    "facebookexternalhit",
    "embedly",
    // Generic names.
    "crawl",
    "spider",
    "slurp",
    "scrapy",
    // HTTP libraries.
    "curl/",
    "wget/",
    "python-",
    "python/",
    "go-http-client",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "libwww-perl",
    "httpclient",
    // A contact URL (`+http://www.google.com/bot.html`).
    "http://",
    "https://",
    "www.",
];

/// Case-insensitive substrings that flag a User-Agent only in context ([`in_context`]).
const IN_CONTEXT: &[&str] = &["bot", "@", "java/"];

/// The crawler list's patterns, in order.
pub fn crawler_patterns() -> impl Iterator<Item = &'static str> {
    patterns(CRAWLER_LIST)
}

/// The pattern lines of a list file: neither empty nor a `#` comment.
fn patterns(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// How a list pattern that is not a few plain strings is compiled: bytes, ASCII classes
/// (User-Agents are ASCII, and Unicode classes would slow the automaton down for nothing),
/// ignoring case as the rest of the matcher does.
fn builder(pattern: &str) -> RegexBuilder {
    let mut b = RegexBuilder::new(pattern);
    b.unicode(false).case_insensitive(true);
    b
}

/// The strings a pattern matches when it is nothing but a few of them (`Googlebot\/`,
/// `[wW]get`, `(sistrix|SISTRIX) [cC]rawler`): anchors and repetitions stay regexes.
fn strings(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = parse(pattern)?;
    // The extractor reads an anchor as the empty string: `^curl` is not `curl`.
    if !hir.properties().look_set().is_empty() {
        return None;
    }
    let seq = Extractor::new().extract(&hir);
    let literals = seq.literals()?;
    (seq.is_exact() && literals.len() <= 16 && literals.iter().all(|l| !l.is_empty()))
        .then(|| literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// Strings one of which every match of a regex pattern starts with (`^curl`: `curl`;
/// `Current[\s\S]*RSS Reader`: `Current`), long enough to be rare in browsers' User-Agents:
/// the regex runs only where the automaton finds one.
fn triggers(pattern: &str) -> Option<Vec<Vec<u8>>> {
    // Past 16 strings the extractor cuts them short rather than give up.
    let seq = Extractor::new().limit_total(16).extract(&parse(pattern)?);
    let literals = seq.literals()?;
    (literals.len() <= 16 && literals.iter().all(|l| l.len() >= 3))
        .then(|| literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

fn parse(pattern: &str) -> Option<regex_syntax::hir::Hir> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

/// What a match of one of the automaton's strings means.
#[derive(Clone, Copy)]
enum Hit {
    /// A list pattern or a marker: a bot.
    Bot,
    /// One of [`IN_CONTEXT`]: a bot if [`in_context`] says so.
    InContext(&'static str),
    /// A trigger of the list's regex at this index: a bot if the regex matches.
    Regex(usize),
}

/// A compiled matcher: the crawler list, the markers and the in-context words, ignoring case.
/// Upstream writes its patterns case-sensitively; matching them without case flags more
/// crawlers (`bench/results/enrichment.md`) and lets one automaton hold everything.
pub struct BotMatcher {
    /// The list's patterns that are plain strings, the regexes' triggers, [`MARKERS`] and
    /// [`IN_CONTEXT`].
    strings: AhoCorasick,
    /// What each of `strings` means.
    hits: Vec<Hit>,
    /// The list's patterns that are regexes, each on its own.
    regexes: Vec<Regex>,
    /// Those of them without a trigger, as one regex run on every User-Agent (none in the
    /// list today).
    untriggered: Option<Regex>,
}

impl BotMatcher {
    /// A matcher over the given crawler patterns plus the markers.
    pub fn new<'a>(crawlers: impl IntoIterator<Item = &'a str>) -> Result<Self, regex::Error> {
        Self::build(crawlers, true)
    }

    /// A matcher over the given crawler patterns alone, without the markers: how the list's
    /// generator checks one pattern against the pinned browsers.
    pub fn list_only<'a>(
        crawlers: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, regex::Error> {
        Self::build(crawlers, false)
    }

    fn build<'a>(
        crawlers: impl IntoIterator<Item = &'a str>,
        markers: bool,
    ) -> Result<Self, regex::Error> {
        let mut needles = Vec::new();
        let mut hits = Vec::new();
        let mut regexes = Vec::new();
        let mut untriggered = String::new();
        for p in crawlers {
            if let Some(s) = strings(p) {
                hits.extend(s.iter().map(|_| Hit::Bot));
                needles.extend(s);
                continue;
            }
            let re = builder(p).build()?;
            match triggers(p) {
                Some(t) => {
                    hits.extend(t.iter().map(|_| Hit::Regex(regexes.len())));
                    needles.extend(t);
                    regexes.push(re);
                }
                None => {
                    if !untriggered.is_empty() {
                        untriggered.push('|');
                    }
                    untriggered.push_str(&format!("(?:{p})"));
                }
            }
        }
        if markers {
            needles.extend(MARKERS.iter().map(|m| m.as_bytes().to_vec()));
            hits.extend(MARKERS.iter().map(|_| Hit::Bot));
            needles.extend(IN_CONTEXT.iter().map(|m| m.as_bytes().to_vec()));
            hits.extend(IN_CONTEXT.iter().map(|m| Hit::InContext(m)));
        }
        // A DFA scans about twice as fast as a contiguous NFA but takes ~7 MB and tens of
        // milliseconds to build: the edge worker's isolates start often, and would pay that on
        // their first request.
        let kind = if cfg!(target_arch = "wasm32") {
            AhoCorasickKind::ContiguousNFA
        } else {
            AhoCorasickKind::DFA
        };
        Ok(BotMatcher {
            strings: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(kind))
                .build(&needles)
                .expect("a few thousand short patterns fit the automaton"),
            hits,
            regexes,
            untriggered: if untriggered.is_empty() {
                None
            } else {
                Some(builder(&untriggered).build()?)
            },
        })
    }

    /// The built-in matcher, compiled on first use (milliseconds; see
    /// `bench/results/enrichment.md`).
    pub fn builtin() -> &'static BotMatcher {
        static BUILTIN: OnceLock<BotMatcher> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            BotMatcher::new(crawler_patterns())
                .expect("the generated crawler list compiles (checked by its generator and tests)")
        })
    }

    /// Bytes of heap the automaton holds (the regexes aside: a few dozen short ones).
    pub fn memory_usage(&self) -> usize {
        self.strings.memory_usage()
    }

    /// Whether `ua` is an automated client's: a pattern or a marker matches it outside the
    /// device model.
    pub fn is_match(&self, ua: &str) -> bool {
        let h = ua.as_bytes();
        let outside = outside_device_model(ua);
        let regex = |r: &Regex| r.find_iter(h).any(|m| outside(m.start(), m.end()));
        // Browsers' User-Agents hold none of the strings: one fast scan says so. Only then is
        // each match looked at, with its position and context.
        (self.strings.is_match(h)
            && self.strings.find_overlapping_iter(h).any(|m| {
                outside(m.start(), m.end())
                    && match self.hits[m.pattern().as_usize()] {
                        Hit::Bot => true,
                        Hit::InContext(word) => in_context(h, m.start(), m.end(), word),
                        Hit::Regex(i) => regex(&self.regexes[i]),
                    }
            }))
            || self.untriggered.as_ref().is_some_and(regex)
    }
}

/// Whether a match at `start..end` of `ua` lies outside its device model (all do when it
/// names none). Matches are rare, so the model is looked for only when one is found.
fn outside_device_model(ua: &str) -> impl Fn(usize, usize) -> bool + '_ {
    let model = OnceLock::new();
    move |start, end| match *model.get_or_init(|| device_model(ua)) {
        Some((s, e)) => end <= s || start >= e,
        None => true,
    }
}

/// Whether the in-context word `word` at `h[start..end]` flags the User-Agent:
/// - `bot` as a word or a name's ending (`Googlebot/`, `AhrefsBot`, `robots`, `my_bot_`), not
///   inside one (`Cubot`, a phone brand; `Caboto`; `turbotab`);
/// - `@` starting an e-mail address's domain (`crawler@example.org`);
/// - `java/` at the start: Java's HTTP client names itself `Java/1.8.0`, and feature phones say
///   `Java/Jbed` in the middle of a browser's User-Agent.
fn in_context(h: &[u8], start: usize, end: usize, word: &str) -> bool {
    let alpha = |i: usize| h.get(i).is_some_and(u8::is_ascii_alphabetic);
    match word {
        "bot" => {
            let cu = start >= 2 && h[start - 2..start].eq_ignore_ascii_case(b"cu");
            let after = if matches!(h.get(end), Some(b's' | b'S')) {
                end + 1
            } else {
                end
            };
            !cu && !alpha(after)
        }
        "@" => {
            let domain = &h[end..];
            domain.first().is_some_and(u8::is_ascii_alphabetic)
                && domain
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')))
                    .is_some_and(|i| domain[i] == b'.')
        }
        _ => start == 0,
    }
}

/// Whether the User-Agent is an automated client's, by the built-in matcher.
pub fn is_automated(ua: &str) -> bool {
    BotMatcher::builtin().is_match(ua)
}

/// The byte range of an Android device's model name (and build id) in its browser's
/// User-Agent: in `Mozilla/5.0 (Linux; U; Android 9; en-us; CUBOT X18 Build/O11019; wv) …`
/// the field after the Android version and the optional locale.
fn device_model(ua: &str) -> Option<(usize, usize)> {
    let android = ua
        .as_bytes()
        .windows(7)
        .position(|w| w.eq_ignore_ascii_case(b"android"))?;
    let open = ua[..android].rfind('(')?;
    // The platform parentheses hold no other parenthesis before Android.
    if ua[open + 1..android].contains(')') {
        return None;
    }
    let close = android + ua[android..].find(')')?;
    let mut at = android;
    // The fields after `Android N`: skip `U`, `I` and a locale; the next one is the model.
    let mut fields = ua[android..close].split(';');
    at += fields.next()?.len() + 1;
    for field in fields {
        let f = field.trim();
        let letters = |b: &[u8]| b.iter().all(u8::is_ascii_alphabetic);
        let locale = match f.as_bytes() {
            [a, b] => letters(&[*a, *b]),
            [a, b, b'-' | b'_', c, d] => letters(&[*a, *b, *c, *d]),
            _ => false,
        };
        if !(f.is_empty() || f == "U" || f == "I" || f == "wv" || locale) {
            return Some((at, at + field.len()));
        }
        at += field.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{Device, parse_user_agent};
    use super::*;

    /// Automated clients that must stay bots, a few of each kind: upstream's own examples
    /// (monperrus/crawler-user-agents, MIT), and ones from sources independent of it:
    /// ua-parser/uap-core tests/test_device.yaml (Apache-2.0), omrilotan/isbot
    /// fixtures/crawlers.yml (Unlicense), and the default User-Agents of automation tools.
    const CRAWLERS: &[&str] = &[
        // Search engines, some posing as a phone or a desktop browser.
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Safari/537.36",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_1) AppleWebKit/600.2.5 (KHTML, like Gecko) Version/8.0.2 Safari/600.2.5 (Applebot/0.1)",
        "Mozilla/5.0 (X11; Linux x86_64; Storebot-Google/1.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.88 Safari/537.36",
        "Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)/2.4w",
        "search.marginalia.nu",
        // AI crawlers and agents.
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0; +https://openai.com/bot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Claude-User/1.0; +Claude-User@anthropic.com)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.3754.1902 Mobile Safari/537.36; Bytespider",
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        "CCBot/2.0 (https://commoncrawl.org/faq/)",
        // SEO, archives, security research.
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        "Screaming Frog SEO Spider/5.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.61 Safari/537.36 ArchiveBox/0.6.2",
        "ADmantX Platform Semantic Analyzer - ADmantX Inc. - www.admantx.com - support@admantx.com",
        // Link previews and feeds.
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.19.258 A",
        "Feedly/1.0 (+http://www.feedly.com/fetcher.html; like FeedFetcher-Google)",
        // Monitoring and page speed.
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Amazon-Route53-Health-Check-Service (ref b0eb04d5-cb5e-40e7-839b-558e52fc3f0d; report http://amzn.to/1vsZADi)",
        "Mozilla/5.0 (Linux; Android 7.0; Moto G (4)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/98.0.4695.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "Mozilla/5.0 (Windows NT 6.3; WOW64; Trident/7.0; rv:11.0) like Gecko PTST/1.0",
        // Headless browsers: Puppeteer's and Playwright's default, PhantomJS.
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        // HTTP libraries.
        "curl/7.64.0",
        "Wget/1.20.3 (linux-gnu)",
        "python-requests/2.22.0",
        "Go-http-client/1.1",
        "okhttp/4.1.0",
        "axios/0.19.0",
        "Apache-HttpClient/4.5.10 (Java/1.8.0_201)",
        "Java/1.8.0_151",
        "Scrapy/1.0.3 (+http://scrapy.org)",
        "",
    ];

    #[test]
    fn crawlers_are_bots() {
        for ua in CRAWLERS {
            let info = parse_user_agent(ua);
            assert!(info.is_bot && info.device == Device::Bot, "{ua:?}");
        }
    }

    #[test]
    fn pinned_browsers_are_not_bots_and_keep_their_device() {
        let pinned = include_str!("../../data/browser-user-agents.tsv");
        let mut n = 0;
        for line in pinned.lines().filter(|l| !l.starts_with('#')) {
            let (device, ua) = line
                .split_once('\t')
                .expect("device, a tab, the User-Agent");
            let info = parse_user_agent(ua);
            assert!(!info.is_bot, "{ua}");
            assert_eq!(info.device.name(), device, "{ua}");
            n += 1;
        }
        assert!(n >= 40, "{n} pinned browsers");
    }

    #[test]
    fn the_compiled_list_is_upstreams_whole() {
        let header: Vec<&str> = CRAWLER_LIST
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect();
        assert!(
            header
                .iter()
                .any(|l| l.contains("monperrus/crawler-user-agents")),
            "the header names the source"
        );
        assert!(
            header.iter().any(|l| l.contains("MIT License")),
            "and its licence"
        );
        assert!(crawler_patterns().count() > 1000);
        assert!(crawler_patterns().any(|p| p == "Googlebot\\/"));
        // Every pattern compiles; most are plain strings for the automaton.
        let literal = crawler_patterns().filter(|p| strings(p).is_some()).count();
        assert!(literal * 10 > crawler_patterns().count() * 9, "{literal}");
        assert!(BotMatcher::builtin().is_match("Googlebot/2.1"));
        // Every regex has strings to trigger it: none runs on every User-Agent.
        let untriggered: Vec<&str> = crawler_patterns()
            .filter(|p| strings(p).is_none() && triggers(p).is_none())
            .collect();
        assert_eq!(untriggered, Vec::<&str>::new());
        assert!(BotMatcher::builtin().untriggered.is_none());
    }

    #[test]
    fn a_regex_runs_where_its_trigger_is_and_still_decides() {
        let m =
            BotMatcher::list_only(["^Seekbot", "Current[\\s\\S]*RSS Reader", "SSL Labs$"]).unwrap();
        assert!(m.untriggered.is_none() && m.regexes.len() == 3);
        for ua in ["Seekbot/1.0", "Current 2.1 RSS Reader", "Qualys SSL Labs"] {
            assert!(m.is_match(ua), "{ua}");
        }
        for ua in ["MySeekbot/1.0", "RSS Reader Current", "SSL Labs scan"] {
            assert!(!m.is_match(ua), "{ua}");
        }
    }

    #[test]
    fn the_device_model_is_the_field_after_android_and_locale() {
        for (ua, model) in [
            (
                "Mozilla/5.0 (Linux; Android 8.1.0; CUBOT J3 PRO) AppleWebKit/537.36",
                " CUBOT J3 PRO",
            ),
            (
                "Mozilla/5.0 (Linux; U; Android 4.3; en-us; HTC_Butterfly Build/JSS15J) AppleWebKit/534.30",
                " HTC_Butterfly Build/JSS15J",
            ),
            (
                "Mozilla/5.0 (Linux; Android 15; RMX5116 Build/AP3A.240617.008; wv) AppleWebKit/537.36",
                " RMX5116 Build/AP3A.240617.008",
            ),
            (
                "Mozilla/5.0 (Linux; U; Android 2.3;en-us; ViewSonic-ViewPad7e build/ERE27) AppleWebKit/533.1",
                " ViewSonic-ViewPad7e build/ERE27",
            ),
        ] {
            let (s, e) = device_model(ua).expect(ua);
            assert_eq!(&ua[s..e], model);
        }
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
            "Mozilla/5.0 (Linux; Android 10) AppleWebKit/537.36",
            "DESAY_TS908_CMCC_TD/1.0 Android/2.3.7 (LinuxOS 2.6.35.7) Release/04.13.2012",
            "Mozilla/5.0 (Linux; Android",
        ] {
            assert_eq!(device_model(ua), None, "{ua}");
        }
        // The crawler's own name, after the platform, stays.
        let googlebot = "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.96 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let (s, e) = device_model(googlebot).unwrap();
        assert_eq!(&googlebot[s..e], " Nexus 5X Build/MMB29P");
        assert!(
            BotMatcher::list_only(["Googlebot"])
                .unwrap()
                .is_match(googlebot)
        );
        assert!(
            !BotMatcher::list_only(["Nexus"])
                .unwrap()
                .is_match(googlebot)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_judged_without_a_panic(
            ua in "(Mozilla/5.0 \\((Linux; )?Android[^)]{0,40}\\))?.{0,80}",
        ) {
            is_automated(&ua);
        }
    }

    #[test]
    fn bot_is_a_word_or_an_ending() {
        let m = BotMatcher::new([]).unwrap();
        for ua in [
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "SomeBot",
            "my-bot_1.0",
            "Bot/1.0",
            "robots checker",
            "ChatBot 1.0",
        ] {
            assert!(m.is_match(ua), "{ua}");
        }
        for ua in [
            "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; WOW64; Trident/5.0; Banca Caboto s.p.a.)",
            "Opera/9.70 (Linux armv7l ; U; turbotabbee/TSV2.0/1.02Q; fr) Presto/2.2",
            "fuboTV/4.75.0 (Linux;Android 9; AFTDCT31 Build/PS7664.3772N) FuboPlayer/v1.34.0",
            "Mozilla/5.0 (Linux; Android 8.1.0; CUBOT_P20) AppleWebKit/537.36",
            "Mozilla/5.0 (Linux; Android 6.0; POWER BOT Build/MRA58K) AppleWebKit/537.36",
        ] {
            assert!(!m.is_match(ua), "{ua}");
        }
    }
}
