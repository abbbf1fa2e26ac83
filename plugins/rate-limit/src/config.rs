//! The rate-limit plugin's config.

use serde::Deserialize;

/// The whole config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Limits; a request must be allowed by every one that applies.
    pub limits: Vec<LimitConfig>,
    /// Peers whose `X-Forwarded-For` is believed (addresses or CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Send `RateLimit-Policy` / `RateLimit` on allowed responses too.
    #[serde(default = "yes")]
    pub headers: bool,
}

/// One limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Name, used in headers and keys; default `limit-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// What is counted: `consumer`, `client_ip`, `route`, `header:NAME`, or
    /// a list of them (a combination).
    pub key: KeySpec,
    /// Requests per `per`.
    pub rate: u32,
    /// The period: `500ms`, `1s`, `1m`, `1h`, `1d`, or seconds as a number.
    pub per: Period,
    /// Extra requests allowed at once.
    #[serde(default)]
    pub burst: u32,
    /// Only for these routes (the router's `route`); all when absent.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
}

/// `key`: one source or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    /// One source.
    One(String),
    /// A combination.
    Many(Vec<String>),
}

/// `per`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Period {
    /// Seconds.
    Seconds(u64),
    /// `1s`, `500ms`, `2m`, `1h`, `1d`.
    Text(String),
}

impl Period {
    /// In milliseconds.
    pub fn millis(&self) -> Result<u64, String> {
        let ms = match self {
            Period::Seconds(s) => s.saturating_mul(1000),
            Period::Text(text) => {
                let text = text.trim();
                let split = text
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(text.len());
                let (number, unit) = text.split_at(split);
                let n: u64 = number
                    .parse()
                    .map_err(|_| format!("`{text}` is not a period like `1s` or `5m`"))?;
                let factor = match unit {
                    "ms" => 1,
                    "s" | "" => 1_000,
                    "m" => 60_000,
                    "h" => 3_600_000,
                    "d" => 86_400_000,
                    _ => return Err(format!("`{text}`: the unit must be ms, s, m, h or d")),
                };
                n.saturating_mul(factor)
            }
        };
        if ms == 0 {
            return Err("the period must be longer than 0".into());
        }
        Ok(ms)
    }
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse() {
        assert_eq!(Period::Text("1s".into()).millis(), Ok(1_000));
        assert_eq!(Period::Text("500ms".into()).millis(), Ok(500));
        assert_eq!(Period::Text("2m".into()).millis(), Ok(120_000));
        assert_eq!(Period::Text("1h".into()).millis(), Ok(3_600_000));
        assert_eq!(Period::Seconds(10).millis(), Ok(10_000));
        assert!(Period::Text("soon".into()).millis().is_err());
        assert!(Period::Text("1w".into()).millis().is_err());
        assert!(Period::Text("0s".into()).millis().is_err());
    }
}
