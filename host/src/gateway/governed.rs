//! One plugin's place in the chain, run under its governance: the canary
//! takes its share of requests (falling back to the stable version when it
//! fails), a quarantined version is not called, every call is recorded, and
//! a failure is passed over when the plugin's policy is `skip`.

use crate::error::{GatewayError, PluginFailure};
use crate::exchange::{Exchange, Hook, HookFailure};
use crate::governance::OnFailure;
use crate::governance::health::{Admit, Health};
use crate::pipeline::Pipeline;
use crate::plugin::LoadedPlugin;
use crate::runtime::bindings::{Action, Hooks};

/// One governed hook call: the exchange back, the plugin's action, and
/// the index of the plugin version that ran it (the canary's or the
/// stable one's).
pub(super) struct Turn {
    /// The request (and in `on-response` the response) after the hook.
    pub exchange: Exchange,
    /// What the plugin asked for.
    pub action: Action,
    /// The index of the version that ran.
    pub ran: usize,
}

/// Run the hook `ex` is for at chain position `index` (a stable plugin):
/// in its canary when the canary takes this request, falling back to the
/// stable version when the canary fails; not at all when the version does
/// not declare the hook; with a failure passed over when the plugin's
/// policy is `skip`. In `on-response` the version `on-request` chose is
/// kept: a request whose canary failed stays with the stable version.
pub(super) async fn call(
    pipeline: &Pipeline,
    index: usize,
    mut ex: Exchange,
) -> Result<Turn, GatewayError> {
    let hook = ex.hook();
    let declared = match hook {
        Hook::Request => Hooks::ON_REQUEST,
        Hook::Response => Hooks::ON_RESPONSE,
    };
    let skip = |exchange, ran| Turn {
        exchange,
        action: Action::Continue,
        ran,
    };
    let plugins = pipeline.plugins();
    let policy = pipeline.scopes().on_failure(index);
    let (Some(stable), Some(governed)) = (plugins.get(index), pipeline.governed(index)) else {
        return Ok(skip(ex, index));
    };
    if let Some(canary) = &governed.canary
        && !ex.req.canary_failed.contains(&index)
        && canary.takes(&ex.req)
        && let Some(version) = plugins.get(canary.index)
    {
        if !version.hooks().contains(declared) {
            return Ok(skip(ex, canary.index));
        }
        match attempt(version, &canary.health, ex).await {
            Ok((exchange, action)) => {
                return Ok(Turn {
                    exchange,
                    action,
                    ran: canary.index,
                });
            }
            // The canary failed (or is quarantined): this request goes to
            // the stable version instead, and the canary is judged.
            Err(HookFailure {
                error,
                kept: Some(kept),
            }) => {
                canary_failed(&error, canary, &governed.health);
                ex = kept;
                ex.req.canary_failed.push(index);
            }
            Err(HookFailure { error, kept: None }) => return Err(error),
        }
    }
    if !stable.hooks().contains(declared) {
        return Ok(skip(ex, index));
    }
    match attempt(stable, &governed.health, ex).await {
        Ok((exchange, action)) => Ok(Turn {
            exchange,
            action,
            ran: index,
        }),
        Err(HookFailure {
            error,
            kept: Some(kept),
        }) if policy == OnFailure::Skip => {
            skipped(&error);
            Ok(skip(kept, index))
        }
        Err(HookFailure { error, .. }) => Err(error),
    }
}

/// Call `plugin`'s hook unless its record says it is quarantined, and
/// record the outcome.
async fn attempt(
    plugin: &LoadedPlugin,
    health: &Health,
    ex: Exchange,
) -> Result<(Exchange, Action), HookFailure<GatewayError>> {
    let admitted = health.admit();
    if admitted == Admit::Quarantined {
        return Err(HookFailure {
            error: quarantined(plugin),
            kept: Some(ex),
        });
    }
    let ran = plugin.call(ex).await;
    health.record(admitted, ran.outcome.is_ok(), ran.took);
    ran.outcome
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
