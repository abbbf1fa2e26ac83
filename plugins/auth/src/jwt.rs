//! JWS compact tokens (RFC 7515/7519): strict parsing, signature, then
//! claims. Every failure has a short, secret-free reason for the client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::jwk::{Alg, Key};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than `max_token_bytes`.
    TooLarge,
    /// Not three base64url parts of JSON objects.
    Malformed(&'static str),
    /// `alg` is `none`, unknown, or not allowed here.
    UnsupportedAlg,
    /// A `crit` header names extensions this verifier does not implement.
    UnsupportedCrit,
    /// No key with the token's `kid`.
    UnknownKid,
    /// No key verifies the signature.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    WrongAudience,
    /// A required claim is missing.
    MissingClaim(String),
    /// A time claim is not a number.
    BadClaim(&'static str),
}

impl TokenError {
    /// The description for `error_description` and the JSON body.
    pub fn describe(&self) -> String {
        match self {
            TokenError::TooLarge => "token too large".into(),
            TokenError::Malformed(why) => format!("malformed token: {why}"),
            TokenError::UnsupportedAlg => "unsupported algorithm".into(),
            TokenError::UnsupportedCrit => "unsupported critical header".into(),
            TokenError::UnknownKid => "unknown key id".into(),
            TokenError::BadSignature => "invalid signature".into(),
            TokenError::Expired => "token expired".into(),
            TokenError::NotYetValid => "token not yet valid".into(),
            TokenError::IssuedInFuture => "token issued in the future".into(),
            TokenError::WrongIssuer => "wrong issuer".into(),
            TokenError::WrongAudience => "wrong audience".into(),
            TokenError::MissingClaim(name) => format!("missing claim `{name}`"),
            TokenError::BadClaim(name) => format!("claim `{name}` is not a number"),
        }
    }
}

/// A token split and decoded, signature not yet checked.
pub struct Parsed<'a> {
    /// The algorithm from the header.
    pub alg: Alg,
    /// `kid` from the header.
    pub kid: Option<String>,
    /// The signed text, `header.payload`.
    pub signed: &'a str,
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// The claims.
    pub claims: Map<String, Value>,
}

/// Strict base64url: no padding, no other alphabet.
fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed(what)),
    }
}

/// Split and decode a token; check the header.
pub fn parse<'a>(
    token: &'a str,
    max_bytes: usize,
    allowed: &[Alg],
) -> Result<Parsed<'a>, TokenError> {
    if token.len() > max_bytes {
        return Err(TokenError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let header = object(
        &decode(header, "header encoding")?,
        "header is not a JSON object",
    )?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some(name) => Alg::parse(name)
            .filter(|a| allowed.contains(a))
            .ok_or(TokenError::UnsupportedAlg)?,
        None => return Err(TokenError::Malformed("no alg")),
    };
    // RFC 7515 §4.1.11: a recipient must reject a token whose `crit` lists
    // an extension it does not understand; this verifier understands none.
    if header.contains_key("crit") {
        return Err(TokenError::UnsupportedCrit);
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(TokenError::Malformed("kid is not a string")),
        None => None,
    };
    let signature = decode(signature, "signature encoding")?;
    let claims = object(
        &decode(payload, "payload encoding")?,
        "payload is not a JSON object",
    )?;
    let signed_len = token.len() - signature_len(token);
    Ok(Parsed {
        alg,
        kid,
        signed: &token[..signed_len],
        signature,
        claims,
    })
}

/// Length of `.signature` at the end of the token.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

/// Verify the signature with the keys: the one named by `kid`, or any that
/// fits the algorithm when the token names none.
pub fn verify_signature(parsed: &Parsed<'_>, keys: &[&Key]) -> Result<(), TokenError> {
    let candidates: Vec<&&Key> = match &parsed.kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
            .collect(),
        None => keys.iter().collect(),
    };
    if candidates.is_empty() {
        return Err(TokenError::UnknownKid);
    }
    let ok = candidates
        .iter()
        .filter(|k| k.fits(parsed.alg))
        .any(|k| k.verify(parsed.alg, parsed.signed.as_bytes(), &parsed.signature));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// What the claims must satisfy.
pub struct ClaimRules<'a> {
    /// Now, in seconds since the epoch.
    pub now: i64,
    /// Allowed clock skew.
    pub leeway: i64,
    /// Required `iss`.
    pub issuer: Option<&'a str>,
    /// Accepted audiences (empty: unchecked).
    pub audiences: &'a [String],
    /// Claims that must exist.
    pub required: &'a [String],
}

fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(TokenError::BadClaim(name)),
    }
}

/// Check the registered claims.
pub fn check_claims(claims: &Map<String, Value>, rules: &ClaimRules<'_>) -> Result<(), TokenError> {
    if let Some(exp) = time_claim(claims, "exp")?
        && rules.now >= exp.saturating_add(rules.leeway)
    {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && rules.now.saturating_add(rules.leeway) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(iat) = time_claim(claims, "iat")?
        && rules.now.saturating_add(rules.leeway) < iat
    {
        return Err(TokenError::IssuedInFuture);
    }
    if let Some(issuer) = rules.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer)
    {
        return Err(TokenError::WrongIssuer);
    }
    if !rules.audiences.is_empty() {
        let matches = |aud: &str| rules.audiences.iter().any(|a| a == aud);
        let ok = match claims.get("aud") {
            Some(Value::String(aud)) => matches(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(matches),
            _ => false,
        };
        if !ok {
            return Err(TokenError::WrongAudience);
        }
    }
    for name in rules.required {
        if !claims.contains_key(name) {
            return Err(TokenError::MissingClaim(name.clone()));
        }
    }
    Ok(())
}

/// Scopes granted by the token: `scope` (space-separated) or `scp`.
pub fn scopes(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_string)),
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
            }
            _ => {}
        }
    }
    out
}

/// A claim as header text: strings as they are, other values as JSON.
pub fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(now: i64) -> ClaimRules<'static> {
        ClaimRules {
            now,
            leeway: 10,
            issuer: None,
            audiences: &[],
            required: &[],
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn times_respect_leeway() {
        let c = claims(json!({"exp": 100, "nbf": 50, "iat": 50}));
        assert_eq!(check_claims(&c, &rules(105)), Ok(()));
        assert_eq!(check_claims(&c, &rules(110)), Err(TokenError::Expired));
        assert_eq!(check_claims(&c, &rules(41)), Ok(()));
        assert_eq!(check_claims(&c, &rules(39)), Err(TokenError::NotYetValid));
        let c = claims(json!({"iat": 200}));
        assert_eq!(
            check_claims(&c, &rules(100)),
            Err(TokenError::IssuedInFuture)
        );
        let c = claims(json!({"exp": "soon"}));
        assert_eq!(
            check_claims(&c, &rules(1)),
            Err(TokenError::BadClaim("exp"))
        );
    }

    #[test]
    fn issuer_audience_and_required_claims() {
        let auds = vec!["api".to_string()];
        let required = vec!["sub".to_string()];
        let r = ClaimRules {
            now: 0,
            leeway: 0,
            issuer: Some("idp"),
            audiences: &auds,
            required: &required,
        };
        assert_eq!(
            check_claims(
                &claims(json!({"iss": "idp", "aud": ["x", "api"], "sub": "a"})),
                &r
            ),
            Ok(())
        );
        assert_eq!(
            check_claims(
                &claims(json!({"iss": "evil", "aud": "api", "sub": "a"})),
                &r
            ),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            check_claims(&claims(json!({"iss": "idp", "aud": "web", "sub": "a"})), &r),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            check_claims(&claims(json!({"iss": "idp", "aud": "api"})), &r),
            Err(TokenError::MissingClaim("sub".into()))
        );
    }

    #[test]
    fn parsing_is_strict() {
        let all = Alg::ALL;
        assert!(matches!(
            parse("a.b", 100, &all),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            parse("a.b.c.d", 100, &all),
            Err(TokenError::Malformed(_))
        ));
        assert_eq!(
            parse(&"x".repeat(200), 100, &all).err(),
            Some(TokenError::TooLarge)
        );
        // {"alg":"none"}
        assert_eq!(
            parse("eyJhbGciOiJub25lIn0.e30.", 100, &all).err(),
            Some(TokenError::UnsupportedAlg)
        );
        // Padding is not base64url-without-padding.
        assert!(matches!(
            parse("eyJhbGciOiJIUzI1NiJ9=.e30.AA", 100, &all),
            Err(TokenError::Malformed(_))
        ));
        // {"alg":"HS256","crit":["exp"]}
        let crit = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","crit":["exp"]}"#);
        assert_eq!(
            parse(&format!("{crit}.e30.AA"), 100, &all).err(),
            Some(TokenError::UnsupportedCrit)
        );
        // Allowed algorithms narrow the choice.
        let hs = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        assert_eq!(
            parse(&format!("{hs}.e30.AA"), 100, &[Alg::Rs256]).err(),
            Some(TokenError::UnsupportedAlg)
        );
        let token = format!("{hs}.e30.AA");
        let ok = parse(&token, 100, &all).unwrap();
        assert_eq!(ok.signed, format!("{hs}.e30"));
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        assert_eq!(scopes(&claims(json!({"scope": "a b"}))), ["a", "b"]);
        assert_eq!(scopes(&claims(json!({"scp": ["c"]}))), ["c"]);
    }
}
