//! The cache's reading of RFC 9111 fields on any values: `Cache-Control`
//! (§5.2), `Age` (§5.1), `Date` and `Expires` (§5.3, HTTP-date of RFC 9110
//! §5.6.7), `Vary` (§4.1), `Pragma` (§5.4). Nothing panics or overflows;
//! an `Age` is never read as more than 2^31 seconds (§1.2.2); an HTTP date
//! the cache formats reads back as the same instant.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weir_plugin_cache::fuzzing;

#[derive(Arbitrary, Debug)]
struct Input {
    cache_control: Vec<String>,
    date: Option<String>,
    expires: Option<String>,
    age: Option<String>,
    vary: Vec<String>,
    pragma: Vec<String>,
    method: String,
    now_ms: u64,
    default_s: u32,
}

fuzz_target!(|input: Input| {
    let now_ms = input.now_ms % (1 << 52);
    let freshness = fuzzing::response(
        &input.cache_control,
        input.date.as_deref(),
        input.expires.as_deref(),
        input.age.as_deref(),
        &input.vary,
        now_ms,
        u64::from(input.default_s),
    );
    if input.date.is_none() {
        assert!(
            freshness.initial_age_s <= 1 << 31,
            "{input:?}: {freshness:?}"
        );
    }
    let _ = fuzzing::request(&input.method, &input.cache_control, &input.pragma);
    for text in [&input.date, &input.expires].into_iter().flatten() {
        if let Some((seconds, formatted)) = fuzzing::http_date(text) {
            let again = fuzzing::http_date(&formatted);
            assert_eq!(
                again.map(|(s, _)| s),
                Some(seconds),
                "{text:?} -> {formatted:?}"
            );
        }
    }
});
