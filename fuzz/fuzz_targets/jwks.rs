//! JWKs (RFC 7517, RFC 7518 §6, RFC 8037) as the host's `crypto`
//! capability imports them, then used to verify any signature over any
//! message with any algorithm name. A key is refused with a message or
//! imported; it verifies only algorithms of its own type, and garbage never
//! verifies.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weir::runtime::jose::VerifyingKey;

#[derive(Arbitrary, Debug)]
struct Input {
    jwk: String,
    alg: String,
    message: Vec<u8>,
    signature: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(key) = VerifyingKey::from_jwk(&input.jwk) else {
        return;
    };
    let verified = key.verify(&input.alg, &input.message, &input.signature);
    if verified {
        assert!(key.accepts(&input.alg), "{input:?}");
    }
});
