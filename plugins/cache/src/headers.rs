//! A request's headers read in one host call: the cache consults up to a
//! dozen of them per request, and one call returning all is cheaper than a
//! call for each (a few tenths of a microsecond apiece).

/// Headers as the host lists them (names lower-case, in order).
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new(pairs: Vec<(String, String)>) -> Headers {
        Headers(pairs)
    }

    /// The first value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the message has a body (RFC 9112 §6.1).
    pub fn has_body(&self) -> bool {
        self.get("transfer-encoding").is_some()
            || self.get("content-length").is_some_and(|l| l.trim() != "0")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_name() {
        let pairs = [("accept", "a"), ("x", "1"), ("accept", "b")];
        let h = Headers::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
        assert_eq!(h.get("accept"), Some("a"));
        assert_eq!(h.all("accept"), vec!["a", "b"]);
        assert_eq!(h.get("missing"), None);
        assert!(h.all("missing").is_empty());
    }
}
