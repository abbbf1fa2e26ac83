//! Entry points for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature: a YAML or JSON document loaded as an OpenAPI
//! document and looked up, and the plugin's own config compiled, as
//! `init` does.

use crate::openapi::{Api, Found};
use crate::{config, yaml};

/// Load `text` (YAML 1.2 or JSON) as an OpenAPI 3 document and find
/// `method` `path` in it: whether an operation was found.
pub fn openapi(text: &str, method: &str, path: &str) -> Result<bool, String> {
    let doc = yaml::parse_document(text)?;
    let api = Api::load(doc, true, true)?;
    Ok(matches!(api.find(method, path), Found::Operation(..)))
}

/// Parse `text` as YAML into JSON values.
pub fn yaml(text: &str) -> Result<serde_json::Value, String> {
    yaml::parse_document(text)
}

/// Compile the plugin's JSON config.
pub fn config(text: &str) -> Result<(), String> {
    let config: config::Config = serde_json::from_str(text).map_err(|e| e.to_string())?;
    config::compile_all(config).map(|_| ())
}
