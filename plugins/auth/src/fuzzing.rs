//! Entry points for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature: a token split, decoded and its claims checked, as
//! `on-request` does before any signature check (which needs the host's
//! `crypto` capability; the host's key parsing is fuzzed on its own).

use crate::jwk::Alg;
use crate::jwt::{self, ClaimRules};

/// What the plugin concludes from a token, or why it refuses it.
pub fn token(text: &str, now: i64) -> Result<(Option<String>, Vec<String>), String> {
    let parsed = jwt::parse(text, 8192, &Alg::ALL).map_err(|e| e.describe())?;
    let audiences = ["api".to_string()];
    let required = ["sub".to_string()];
    let rules = ClaimRules {
        now,
        leeway: 60,
        issuer: Some("https://issuer.example"),
        audiences: &audiences,
        required: &required,
    };
    let checked = jwt::check_claims(&parsed.claims, &rules).map_err(|e| e.describe());
    let scopes = jwt::scopes(&parsed.claims);
    for value in parsed.claims.values() {
        let _ = jwt::claim_text(value);
    }
    checked.map(|()| (parsed.kid, scopes))
}
