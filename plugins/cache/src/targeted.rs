//! Targeted cache control (RFC 9213): `CDN-Cache-Control` and fields like
//! it, which speak to one class of caches and, when present and valid,
//! replace `Cache-Control` and `Expires` for them (§2.1). Their value is a
//! Structured Field Dictionary (RFC 8941 §3.2); one that does not parse is
//! ignored whole, and a directive whose value has the wrong type is
//! ignored on its own (RFC 9213 §2.1).

use crate::directives::CacheControl;

/// §1.2.2 of RFC 9111: larger deltas are taken as 2^31.
const DELTA_MAX: i64 = 1 << 31;

/// A bare item of RFC 8941 §3.3, as far as cache directives need it.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Integer(i64),
    Boolean(bool),
    /// Decimals, strings, tokens, byte sequences and inner lists: valid
    /// syntax, but no cache directive takes them.
    Other,
}

/// The directives of the first targeted field (of `names`, in order of
/// preference) present in `headers` with a valid value; `None` when there
/// is none, and `Cache-Control` applies.
pub fn directives(headers: &[(String, String)], names: &[String]) -> Option<CacheControl> {
    names.iter().find_map(|name| {
        let lines: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        if lines.is_empty() {
            return None;
        }
        // Several field lines are one value joined with commas (RFC 9110
        // §5.3).
        parse_dictionary(&lines.join(",")).map(|members| to_cache_control(&members))
    })
}

fn to_cache_control(members: &[(String, Item)]) -> CacheControl {
    let mut cc = CacheControl::default();
    let delta = |item: &Item| match item {
        Item::Integer(n) if *n >= 0 => Some(u64::try_from((*n).min(DELTA_MAX)).unwrap_or(0)),
        _ => None,
    };
    for (name, item) in members {
        let flag = matches!(item, Item::Boolean(true));
        match name.as_str() {
            "no-store" => cc.no_store |= flag,
            "no-cache" => cc.no_cache |= flag,
            "private" => cc.private |= flag,
            "public" => cc.public |= flag,
            "must-revalidate" | "proxy-revalidate" => cc.must_revalidate |= flag,
            "must-understand" => cc.must_understand |= flag,
            "max-age" => cc.max_age = delta(item).or(cc.max_age),
            "s-maxage" => cc.s_maxage = delta(item).or(cc.s_maxage),
            "stale-while-revalidate" => {
                cc.stale_while_revalidate = delta(item).or(cc.stale_while_revalidate);
            }
            "stale-if-error" => cc.stale_if_error = delta(item).or(cc.stale_if_error),
            _ => {}
        }
    }
    cc
}

/// RFC 8941 §4.2.2. A later member of the same name replaces an earlier
/// one (§3.2).
fn parse_dictionary(text: &str) -> Option<Vec<(String, Item)>> {
    let mut p = Parser {
        bytes: text.trim_matches(' ').as_bytes(),
        at: 0,
    };
    let mut members: Vec<(String, Item)> = Vec::new();
    if p.bytes.is_empty() {
        return Some(members);
    }
    loop {
        let key = p.key()?;
        let item = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Item::Boolean(true)
        };
        members.retain(|(k, _)| *k != key);
        members.push((key, item));
        p.skip_ows();
        if p.done() {
            return Some(members);
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        if p.done() {
            return None;
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// §4.2.3.3: lcalpha or `*`, then lcalpha, digits, `_-.*`.
    fn key(&mut self) -> Option<String> {
        let start = self.at;
        match self.peek() {
            Some(b'a'..=b'z' | b'*') => self.at += 1,
            _ => return None,
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.at += 1;
        }
        Some(String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
    }

    fn item_or_inner_list(&mut self) -> Option<Item> {
        if self.eat(b'(') {
            loop {
                while self.eat(b' ') {}
                if self.eat(b')') {
                    break;
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
            self.parameters()?;
            return Some(Item::Other);
        }
        let item = self.bare_item()?;
        self.parameters()?;
        Some(item)
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            while self.eat(b' ') {}
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn bare_item(&mut self) -> Option<Item> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'?' => {
                self.at += 1;
                let value = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.at += 1;
                Some(Item::Boolean(value))
            }
            b':' => {
                self.at += 1;
                while let Some(b) = self.peek() {
                    self.at += 1;
                    match b {
                        b':' => return Some(Item::Other),
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {}
                        _ => return None,
                    }
                }
                None
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'*' => {
                self.at += 1;
                while let Some(b) = self.peek() {
                    if b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b) {
                        self.at += 1;
                    } else {
                        break;
                    }
                }
                Some(Item::Other)
            }
            _ => None,
        }
    }

    /// §4.2.4: an integer of at most 15 digits, or a decimal.
    fn number(&mut self) -> Option<Item> {
        let negative = self.eat(b'-');
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            let frac = self.at;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.at += 1;
            }
            let frac_digits = self.at - frac;
            return (digits <= 12 && (1..=3).contains(&frac_digits)).then_some(Item::Other);
        }
        if digits > 15 {
            return None;
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
        let n: i64 = text.parse().ok()?;
        Some(Item::Integer(if negative { -n } else { n }))
    }

    fn string(&mut self) -> Option<Item> {
        self.at += 1;
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => return Some(Item::Other),
                b'\\' => {
                    let escaped = self.peek()?;
                    if escaped != b'"' && escaped != b'\\' {
                        return None;
                    }
                    self.at += 1;
                }
                0x20..=0x7e => {}
                _ => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdn(values: &[&str]) -> Option<CacheControl> {
        let headers: Vec<(String, String)> = values
            .iter()
            .map(|v| ("cdn-cache-control".to_string(), v.to_string()))
            .collect();
        directives(&headers, &["cdn-cache-control".to_string()])
    }

    #[test]
    fn a_valid_targeted_field_gives_its_directives() {
        // RFC 9213 §2.1.
        let cc = cdn(&["max-age=3600, stale-while-revalidate=30"]).unwrap();
        assert_eq!(
            (cc.max_age, cc.stale_while_revalidate),
            (Some(3600), Some(30))
        );
        assert!(cdn(&["private"]).unwrap().private);
        assert!(cdn(&["no-store"]).unwrap().no_store);
        assert!(!cdn(&["no-store=?0"]).unwrap().no_store);
        assert_eq!(cdn(&["foobar, max-age=3600"]).unwrap().max_age, Some(3600));
        assert_eq!(cdn(&["max-age=1", "max-age=5"]).unwrap().max_age, Some(5));
        assert_eq!(
            cdn(&["max-age=99999999999"]).unwrap().max_age,
            Some(1 << 31)
        );
        assert_eq!(cdn(&[]), None);
    }

    #[test]
    fn an_invalid_dictionary_is_ignored_whole_and_a_wrong_type_alone() {
        // RFC 8941 §4.2 (parsing fails as a whole), RFC 9213 §2.1.
        for invalid in [
            "max-age =100",
            "max-age= 100",
            "MaX-aGe=3600",
            "max-age=10000, &&&&&",
            "max-age=1,",
            "max-age=1234567890123456",
            "max-age=\"unterminated",
        ] {
            assert_eq!(cdn(&[invalid]), None, "{invalid}");
        }
        let wrong = cdn(&["max-age=\"10000\", private"]).unwrap();
        assert_eq!(wrong.max_age, None);
        assert!(wrong.private);
        assert_eq!(cdn(&["max-age=-5"]).unwrap().max_age, None);
        assert_eq!(cdn(&["max-age=5;a=1, x=(1 2);b"]).unwrap().max_age, Some(5));
    }
}
