//! JWTs (RFC 7519, compact JWS of RFC 7515 §7.1) as the auth plugin reads
//! them before any signature check: split, base64url-decoded, the header's
//! `alg`, `crit` and `kid` and the registered claims checked. Any text is
//! refused with a message or read; nothing panics, whatever the claims'
//! types and sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (now, text) = match data.split_first_chunk::<8>() {
        Some((now, rest)) => (i64::from_le_bytes(*now), rest),
        None => (0, data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let _ = weir_plugin_auth::fuzzing::token(text, now);
});
