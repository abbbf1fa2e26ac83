//! Plugin governance: what each plugin may use (capability grants), where
//! it runs (routes and hosts), what its failure costs (the failure policy
//! and quarantine), and how a new version is tried (canaries). Configured per plugin, by file stem, in `weir.toml`'s
//! `[plugins.NAME]` tables (`config/plugins.rs`, with grants parsed in `config/grants.rs`); applied when a pipeline is built,
//! so a request pays only for a lookup.

pub mod canary;
pub mod grants;
pub mod health;
pub mod registry;
pub mod scope;

pub use crate::config::{OnFailure, PluginPolicy, PluginRole};
