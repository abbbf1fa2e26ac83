//! `Cache-Status` (RFC 9211): one list member saying what this cache did
//! with a response, appended after any a cache nearer the origin added.

/// What this cache did, as `Cache-Status` parameters (RFC 9211 §2).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// Answered from the cache (§2.1).
    pub hit: bool,
    /// Why the request went forward (§2.2): `uri-miss`, `vary-miss`,
    /// `stale`, `request`, `method`, `bypass`.
    pub fwd: Option<&'static str>,
    /// The status the forwarded request got (§2.3).
    pub fwd_status: Option<u16>,
    /// Freshness left, in seconds; negative when stale (§2.4).
    pub ttl_s: Option<i64>,
    /// The response was stored (§2.5).
    pub stored: bool,
    /// The request was collapsed with another (§2.6).
    pub collapsed: bool,
    /// Implementation detail (§2.8), a token.
    pub detail: Option<&'static str>,
}

impl CacheStatus {
    pub fn hit(ttl_ms: i64) -> CacheStatus {
        CacheStatus {
            hit: true,
            ttl_s: Some(ttl_ms.div_euclid(1000)),
            ..CacheStatus::default()
        }
    }

    pub fn forward(why: &'static str) -> CacheStatus {
        CacheStatus {
            fwd: Some(why),
            ..CacheStatus::default()
        }
    }

    /// The list member for a cache called `name` (a token).
    pub fn member(&self, name: &str) -> String {
        let mut out = name.to_string();
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(fwd);
        }
        if let Some(status) = self.fwd_status {
            out.push_str(&format!("; fwd-status={status}"));
        }
        if let Some(ttl) = self.ttl_s {
            out.push_str(&format!("; ttl={ttl}"));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            out.push_str(detail);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_as_rfc_9211_shows_them() {
        assert_eq!(CacheStatus::hit(30_500).member("weir"), "weir; hit; ttl=30");
        assert_eq!(CacheStatus::hit(-1).member("weir"), "weir; hit; ttl=-1");
        let revalidated = CacheStatus {
            fwd_status: Some(304),
            stored: true,
            ..CacheStatus::forward("stale")
        };
        assert_eq!(
            revalidated.member("weir"),
            "weir; fwd=stale; fwd-status=304; stored"
        );
        let collapsed = CacheStatus {
            collapsed: true,
            detail: Some("stale-while-revalidate"),
            ..CacheStatus::hit(0)
        };
        assert_eq!(
            collapsed.member("gw"),
            "gw; hit; ttl=0; collapsed; detail=stale-while-revalidate"
        );
    }
}
