//! Where JWT verification keys come from: inline JWKs and a JWKS document
//! from the config, and a JWKS fetched from an upstream. A fetched set is
//! shared by all instances through the host's `kv` store (with the time it
//! was fetched), refreshed after `ttl_s`, and refetched early when a token
//! names an unknown `kid`, at most once per `min_refetch_interval_s` across
//! all instances (the host's `rate` limiter), so a flood of made-up `kid`s
//! cannot hammer the identity provider.

use serde_json::Value;
use weir_sdk::kv;
use weir_sdk::outbound::{self, Call};
use weir_sdk::rate::{self, Limit};

use crate::config::JwksUpstream;
use crate::jwk::{self, Key};

const KV_KEY: &str = "jwks";

/// The keys a token may be verified with.
pub struct KeySet {
    fixed: Vec<Key>,
    remote: Option<Remote>,
}

impl KeySet {
    /// Changes whenever the set of keys does, so results computed with an
    /// older set can be discarded.
    pub fn generation(&self) -> u64 {
        self.remote.as_ref().map_or(0, |r| r.generation)
    }
}

struct Remote {
    config: JwksUpstream,
    keys: Vec<Key>,
    /// When the keys in hand were fetched (seconds since the epoch).
    fetched_at: Option<u64>,
    /// After a failed fetch, no new attempt before this time.
    retry_after: u64,
    /// Bumped each time `keys` is replaced.
    generation: u64,
}

/// No keys could be had.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl KeySet {
    /// Keys from the config; `remote` is fetched when first needed.
    pub fn new(fixed: Vec<Key>, remote: Option<JwksUpstream>) -> KeySet {
        KeySet {
            fixed,
            remote: remote.map(|config| Remote {
                config,
                keys: Vec::new(),
                fetched_at: None,
                retry_after: 0,
                generation: 0,
            }),
        }
    }

    /// All keys, refreshed if stale and refetched (rate-limited) if `kid`
    /// is unknown.
    /// Also returns the [`generation`](Self::generation) of the set.
    pub fn keys(&mut self, kid: Option<&str>, now: u64) -> Result<(u64, Vec<&Key>), Unavailable> {
        if let Some(remote) = &mut self.remote {
            let stale = remote
                .fetched_at
                .is_none_or(|at| now >= at + remote.config.ttl_s);
            if stale && now >= remote.retry_after {
                remote.refresh(now, false);
            }
            let known = |keys: &[Key]| keys.iter().any(|k| k.kid.as_deref() == kid);
            if let Some(kid) = kid
                && !known(&self.fixed)
                && !known(&remote.keys)
                && remote.may_refetch()
            {
                weir_sdk::info!("unknown key id `{kid}`: refetching the JWKS");
                remote.refresh(now, true);
            }
            if remote.keys.is_empty() && self.fixed.is_empty() {
                return Err(Unavailable("no signing keys could be fetched".into()));
            }
        }
        let generation = self.generation();
        let remote_keys = self.remote.iter().flat_map(|r| r.keys.iter());
        Ok((generation, self.fixed.iter().chain(remote_keys).collect()))
    }
}

impl Remote {
    /// Shared across instances and gateways using one store.
    fn may_refetch(&self) -> bool {
        let limit = Limit::new(1, self.config.min_refetch_interval_s.max(1) * 1000);
        rate::take("jwks-refetch", 1, limit).allowed
    }

    /// Take a fresh set from the shared store, or fetch one. On failure the
    /// keys in hand stay in use.
    fn refresh(&mut self, now: u64, force: bool) {
        if !force && let Some((fetched_at, keys)) = self.shared_copy(now) {
            self.keys = keys;
            self.generation += 1;
            self.fetched_at = Some(fetched_at);
            return;
        }
        match self.fetch() {
            Ok((text, keys)) => {
                self.keys = keys;
                self.generation += 1;
                self.fetched_at = Some(now);
                let entry = serde_json::json!({"fetched_at": now, "jwks": text}).to_string();
                let _ = kv::set(KV_KEY, entry.as_bytes(), Some(self.config.ttl_s * 1000));
            }
            Err(why) => {
                // Keep the keys in hand; back off before trying again.
                weir_sdk::warn!(
                    "cannot fetch the JWKS from `{}`: {why}",
                    self.config.upstream
                );
                self.retry_after = now + self.config.min_refetch_interval_s;
            }
        }
    }

    fn shared_copy(&self, now: u64) -> Option<(u64, Vec<Key>)> {
        let bytes = kv::get(KV_KEY).ok()??;
        let entry: Value = serde_json::from_slice(&bytes).ok()?;
        let fetched_at = entry.get("fetched_at")?.as_u64()?;
        if now >= fetched_at + self.config.ttl_s {
            return None;
        }
        let doc: Value = serde_json::from_str(entry.get("jwks")?.as_str()?).ok()?;
        Some((fetched_at, jwk::parse_set(&doc).ok()?))
    }

    fn fetch(&self) -> Result<(String, Vec<Key>), String> {
        let call = Call::get(&self.config.upstream, &self.config.path)
            .header("accept", "application/json")
            .timeout_ms(self.config.timeout_ms);
        let response = outbound::send(&call).map_err(|e| e.to_string())?;
        if response.status != 200 {
            return Err(format!("status {}", response.status));
        }
        let text =
            String::from_utf8(response.body).map_err(|_| "the JWKS is not UTF-8".to_string())?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
        let keys = jwk::parse_set(&doc)?;
        Ok((text, keys))
    }
}
