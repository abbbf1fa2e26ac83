//! One plugin's place in the chain, run under its governance: the canary
//! takes its share of requests (falling back to the stable version when it
//! fails), a quarantined version is not called, every call is recorded, and
//! a failure is passed over when the plugin's policy is `skip`.

use crate::error::{GatewayError, PluginFailure};
use crate::exchange::{HeldRequest, HeldResponse};
use crate::governance::OnFailure;
use crate::governance::health::{Admit, Health};
use crate::pipeline::Pipeline;
use crate::plugin::LoadedPlugin;
use crate::runtime::bindings::{Action, Hooks};

/// A hook's outcome and the index of the plugin version that ran it.
pub(super) type Ran<T> = Result<(T, Action, usize), GatewayError>;

/// Run `on-request` at chain position `index` (a stable plugin).
pub(super) async fn on_request(
    pipeline: &Pipeline,
    index: usize,
    mut req: HeldRequest,
) -> Ran<HeldRequest> {
    let plugins = pipeline.plugins();
    let policy = pipeline.scopes().on_failure(index);
    let (Some(stable), Some(governed)) = (plugins.get(index), pipeline.governed(index)) else {
        return Ok((req, Action::Continue, index));
    };
    if let Some(canary) = &governed.canary
        && canary.takes(&req)
        && let Some(version) = plugins.get(canary.index)
    {
        if !version.hooks().contains(Hooks::ON_REQUEST) {
            return Ok((req, Action::Continue, canary.index));
        }
        match attempt_request(version, &canary.health, req).await {
            Ok((req, action)) => return Ok((req, action, canary.index)),
            // The canary failed (or is quarantined): this request goes to
            // the stable version instead, and the canary is judged.
            Err((error, Some(kept))) => {
                canary_failed(&error, canary, &governed.health);
                req = kept;
                req.canary_failed.push(index);
            }
            Err((error, None)) => return Err(error),
        }
    }
    if !stable.hooks().contains(Hooks::ON_REQUEST) {
        return Ok((req, Action::Continue, index));
    }
    match attempt_request(stable, &governed.health, req).await {
        Ok((req, action)) => Ok((req, action, index)),
        Err((error, Some(kept))) if policy == OnFailure::Skip => {
            skipped(&error);
            Ok((kept, Action::Continue, index))
        }
        Err((error, _)) => Err(error),
    }
}

/// Run `on-response` at chain position `index` (a stable plugin), with the
/// version `on_request` chose for this request.
pub(super) async fn on_response(
    pipeline: &Pipeline,
    index: usize,
    mut req: HeldRequest,
    mut resp: HeldResponse,
) -> Ran<(HeldRequest, HeldResponse)> {
    let plugins = pipeline.plugins();
    let policy = pipeline.scopes().on_failure(index);
    let (Some(stable), Some(governed)) = (plugins.get(index), pipeline.governed(index)) else {
        return Ok(((req, resp), Action::Continue, index));
    };
    if let Some(canary) = &governed.canary
        && !req.canary_failed.contains(&index)
        && canary.takes(&req)
        && let Some(version) = plugins.get(canary.index)
    {
        if !version.hooks().contains(Hooks::ON_RESPONSE) {
            return Ok(((req, resp), Action::Continue, canary.index));
        }
        match attempt_response(version, &canary.health, req, resp).await {
            Ok((states, action)) => return Ok((states, action, canary.index)),
            Err((error, Some(kept))) => {
                canary_failed(&error, canary, &governed.health);
                (req, resp) = kept;
            }
            Err((error, None)) => return Err(error),
        }
    }
    if !stable.hooks().contains(Hooks::ON_RESPONSE) {
        return Ok(((req, resp), Action::Continue, index));
    }
    match attempt_response(stable, &governed.health, req, resp).await {
        Ok((states, action)) => Ok((states, action, index)),
        Err((error, Some(kept))) if policy == OnFailure::Skip => {
            skipped(&error);
            Ok((kept, Action::Continue, index))
        }
        Err((error, _)) => Err(error),
    }
}

/// A failure that may hand the states back.
type Attempt<T> = Result<(T, Action), (GatewayError, Option<T>)>;

/// Call `plugin`'s `on-request` unless its record says it is quarantined,
/// and record the outcome.
async fn attempt_request(
    plugin: &LoadedPlugin,
    health: &Health,
    req: HeldRequest,
) -> Attempt<HeldRequest> {
    let admitted = health.admit();
    if admitted == Admit::Quarantined {
        return Err((quarantined(plugin), Some(req)));
    }
    let (outcome, took) = plugin.timed_on_request(req).await;
    health.record(admitted, outcome.is_ok(), took);
    outcome
}

/// [`attempt_request`] for `on-response`.
async fn attempt_response(
    plugin: &LoadedPlugin,
    health: &Health,
    req: HeldRequest,
    resp: HeldResponse,
) -> Attempt<(HeldRequest, HeldResponse)> {
    let admitted = health.admit();
    if admitted == Admit::Quarantined {
        return Err((quarantined(plugin), Some((req, resp))));
    }
    let (outcome, took) = plugin.timed_on_response(req, resp).await;
    health.record(admitted, outcome.is_ok(), took);
    outcome.map(|(req, resp, action)| ((req, resp), action))
}

fn quarantined(plugin: &LoadedPlugin) -> GatewayError {
    // Not counted as a failure: the plugin was not called.
    GatewayError::Plugin {
        plugin: plugin.name().to_string(),
        failure: PluginFailure::Quarantined,
    }
}

fn canary_failed(
    error: &GatewayError,
    canary: &crate::governance::canary::Canary,
    stable: &Health,
) {
    if !matches!(
        error,
        GatewayError::Plugin {
            failure: PluginFailure::Quarantined,
            ..
        }
    ) {
        // The failure itself was logged (within the plugin's log budget).
        tracing::debug!("{error}; the request is served by the stable version");
        canary.judge(stable);
    }
}

/// Note a failure that the plugin's `on_failure = "skip"` passes over (it
/// was counted and logged, within the plugin's log budget, when it
/// happened).
fn skipped(error: &GatewayError) {
    tracing::debug!("{error}; on_failure = \"skip\": the request goes on");
}
