//! Tooling around the gateway, not on a request's way: the `weir` command
//! line (`cli/`), the demo (`demo/`), `weir init` (`init.rs`),
//! `weir new plugin` (`scaffold.rs`), `weir build-js` (`js_build.rs`) and the plugin test kit (`testkit/`),
//! which the `weir-testkit` crate re-exports.

pub mod cli;
pub mod demo;
pub mod init;
pub mod js_build;
pub mod scaffold;
pub mod sdk_source;
pub mod testkit;
