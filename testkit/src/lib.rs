//! The Weir plugin test kit as a library: load a plugin component built in
//! any language, feed it requests and responses, stub what it calls
//! (`outbound` answers from a list, `rate` real/allow/deny, `kv` a fresh
//! in-memory store) and look at the action it took, the request or
//! response as it left it, the outbound calls it made and what it logged.
//!
//! `weir test-plugin` is the same kit driven by JSON files; this crate is
//! for tests written in Rust:
//!
//! ```no_run
//! use weir_testkit::{PluginUnderTest, Stubs, TestAction, TestRequest};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let plugin = PluginUnderTest::load(
//!     "my_plugin.wasm".as_ref(),
//!     r#"{"allow": ["GET"]}"#,
//!     Stubs::default(),
//!     None, // or a directory to cache compiled plugins in
//! )
//! .await?;
//! let request = TestRequest { method: "DELETE".into(), ..TestRequest::default() };
//! let outcome = plugin.on_request(&request).await?;
//! assert!(matches!(outcome.action, TestAction::Respond { ref reply } if reply.status == 405));
//! println!("{:?}", plugin.take_logs());
//! # Ok(())
//! # }
//! ```
//!
//! It re-exports `weir::tooling::testkit`, so the kit the CLI uses and the one tests
//! use cannot drift apart.

pub use weir::runtime::LogLine;
pub use weir::tooling::testkit::*;
