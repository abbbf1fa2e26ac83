//! Entry points for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature: the header parsing and freshness arithmetic of
//! RFC 9111 on any field values.

use crate::directives::{self, CacheControl, Timing};
use crate::policy;

/// What the cache concludes from one response's fields.
#[derive(Debug)]
pub struct Freshness {
    pub directives: CacheControl,
    pub lifetime_ms: u64,
    pub initial_age_s: u64,
    pub vary: Vec<String>,
}

/// Parse a response's `Cache-Control` lines, `Date`, `Expires`, `Age` and
/// `Vary`, and a request's `Cache-Control` and `Pragma`, as the plugin
/// does, at `now_ms`.
pub fn response(
    cache_control: &[String],
    date: Option<&str>,
    expires: Option<&str>,
    age: Option<&str>,
    vary: &[String],
    now_ms: u64,
    default_s: u64,
) -> Freshness {
    let cc = CacheControl::parse(cache_control);
    let timing = Timing { date, expires, age };
    let _ = cc.allows_credentials();
    for value in cache_control {
        let _ = directives::split_list(value);
    }
    Freshness {
        lifetime_ms: directives::explicit_lifetime_ms(&cc, timing, now_ms)
            .unwrap_or(default_s * 1000),
        initial_age_s: directives::initial_age_s(timing, now_ms),
        vary: policy::vary_names(vary),
        directives: cc,
    }
}

/// A request's directives (`Cache-Control`, else `Pragma`) and the plan
/// for `method`.
pub fn request(method: &str, cache_control: &[String], pragma: &[String]) -> policy::Plan {
    let cc = policy::request_directives(cache_control, pragma);
    policy::plan(method, &cc)
}

/// An HTTP date, parsed and formatted back.
pub fn http_date(text: &str) -> Option<(u64, String)> {
    let seconds = directives::http_date_s(text)?;
    Some((seconds, directives::format_http_date(seconds)))
}
