//! The admin API's plugin governance: each plugin's record (calls,
//! failures, quarantine) and canary in `GET /admin/plugins`, and the
//! operator's actions:
//!
//! - `POST /admin/plugins/NAME/quarantine`: quarantine it now, until lifted;
//! - `DELETE /admin/plugins/NAME/quarantine`: lift a quarantine (automatic
//!   or forced) and count afresh;
//! - `POST /admin/plugins/NAME/promote`: make `NAME.canary.wasm` (and its
//!   `.json`) the stable version by renaming the files, then reload.

use std::path::Path;

use http::StatusCode;
use serde_json::{Value, json};

use crate::error::json_response;
use crate::http::body::Body;
use crate::pipeline::Pipeline;
use crate::reload::Reloader;

/// What `GET /admin/plugins` adds for plugin `index`.
pub fn describe(pipeline: &Pipeline, index: usize) -> Value {
    let Some(governed) = pipeline.governed(index) else {
        return json!({});
    };
    let canary = governed.canary.as_ref().map(|canary| {
        let name = pipeline.plugins().get(canary.index).map(|p| p.name());
        let retired = canary.health.retired();
        json!({
            "name": name,
            "share": canary.share(),
            "state": if retired { "rolled back" } else { "serving" },
            "record": canary.health.status(),
        })
    });
    let canary_of = governed
        .canary_of
        .and_then(|i| pipeline.plugins().get(i))
        .map(|p| p.name());
    json!({
        "record": governed.health.status(),
        "canary": canary,
        "canary_of": canary_of,
        "on_failure": match pipeline.scopes().on_failure(index) {
            crate::governance::OnFailure::Reject => "reject",
            crate::governance::OnFailure::Skip => "skip",
        },
    })
}

/// `POST` (force) or `DELETE` (lift) `/admin/plugins/NAME/quarantine`.
pub fn quarantine(pipeline: &Pipeline, name: &str, force: bool) -> http::Response<Body> {
    let Some(index) = pipeline.plugins().iter().position(|p| p.name() == name) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"error": "no such plugin"}));
    };
    let Some(governed) = pipeline.governed(index) else {
        return json_response(StatusCode::NOT_FOUND, &json!({"error": "no such plugin"}));
    };
    match force {
        true => governed.health.force(),
        false => governed.health.lift(),
    }
    tracing::warn!(
        plugin = name,
        "quarantine {} by the admin API",
        if force { "forced" } else { "lifted" }
    );
    json_response(
        StatusCode::OK,
        &json!({"plugin": name, "record": governed.health.status()}),
    )
}

/// `POST /admin/plugins/NAME/promote`.
pub async fn promote(reloader: &Reloader, name: &str) -> http::Response<Body> {
    let pipeline = reloader.gateway().pipeline();
    let canary = pipeline
        .plugins()
        .iter()
        .position(|p| p.name() == name)
        .and_then(|i| pipeline.governed(i))
        .and_then(|g| g.canary.as_ref())
        .and_then(|c| pipeline.plugins().get(c.index));
    let (Some(canary), Some(stable)) =
        (canary, pipeline.plugins().iter().find(|p| p.name() == name))
    else {
        return json_response(
            StatusCode::CONFLICT,
            &json!({"error": "no canary to promote", "plugin": name}),
        );
    };
    let stable_json = stable.info().file.with_extension("json");
    if let Err(e) = swap_files(
        &canary.info().file,
        canary.info().config_file.as_deref(),
        &stable.info().file,
        &stable_json,
    ) {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": format!("cannot promote: {e}"), "plugin": name}),
        );
    }
    tracing::warn!(plugin = name, "canary promoted by the admin API");
    match reloader.reload("canary promoted").await {
        Ok(plugins) => json_response(
            StatusCode::OK,
            &json!({"status": "promoted", "plugin": name, "plugins": plugins}),
        ),
        Err(e) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({"status": "failed", "file": e.file.display().to_string(), "error": e.message}),
        ),
    }
}

/// Rename the canary's files over the stable version's: the config first
/// (a canary without one runs with `{}`, so the stable config goes), then
/// the component, so a reload in between sees at worst the new config with
/// the old component and keeps serving if that does not load.
fn swap_files(
    canary_wasm: &Path,
    canary_json: Option<&Path>,
    stable_wasm: &Path,
    stable_json: &Path,
) -> std::io::Result<()> {
    match canary_json {
        Some(json) => std::fs::rename(json, stable_json)?,
        None => match std::fs::remove_file(stable_json) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    std::fs::rename(canary_wasm, stable_wasm)
}
