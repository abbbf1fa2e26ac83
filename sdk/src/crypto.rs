//! Signature verification by the host, natively (public-key cryptography
//! compiled to WebAssembly is 10-20x slower).
//!
//! ```no_run
//! use weir_sdk::crypto::VerifyingKey;
//! let key = VerifyingKey::from_jwk(r#"{"kty":"oct","k":"c2VjcmV0"}"#).unwrap();
//! let ok = key.verify("HS256", b"header.payload", &[0u8; 32]);
//! ```

pub use crate::bindings::weir::plugin::crypto::VerifyingKey;
