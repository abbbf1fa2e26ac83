//! The plugin test kit: load any plugin (Rust, Python, JavaScript, ...)
//! outside a gateway, feed it requests and responses, stub what it calls
//! (`outbound`, `rate`; `kv` is a fresh in-memory store), and see the action
//! it took, the request or response as it left it, the calls it made and the
//! lines it logged. `weir test-plugin` is this, driven by JSON files.

mod json;
mod metrics;
mod stubs;

pub use json::{
    BodyText, Headers, RequestOutcome, ResponseOutcome, TestAction, TestRequest, TestResponse,
};
pub use metrics::MetricSample;
pub use stubs::{RateStub, RecordedCall, StubCall, Stubs};

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use crate::config::{Limits, RuntimeSettings};
use crate::error::GatewayError;
use crate::exchange::{Exchange, RequestState, ResponseState};
use crate::http::body::BodyState;
use crate::plugin::{LoadError, LoadedPlugin, PluginSettings};
use crate::runtime::bindings::Action;
use crate::runtime::pool::PoolSettings;
use crate::runtime::{Capabilities, LogLine, Runtime};
use crate::state::{MemoryRateStore, RateStore};
use stubs::{FixedRate, StubOutbound};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One engine for all plugins under test in this process.
fn runtime() -> Result<Arc<Runtime>, LoadError> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.clone());
    }
    let runtime =
        Runtime::new(&Limits::default(), &RuntimeSettings::default()).map_err(|e| LoadError {
            file: "weir test kit".into(),
            message: format!("cannot start the WebAssembly runtime: {e:#}"),
        })?;
    Ok(RUNTIME.get_or_init(|| runtime).clone())
}

/// A plugin loaded for testing.
pub struct PluginUnderTest {
    plugin: LoadedPlugin,
    logs: Arc<Mutex<Vec<LogLine>>>,
    calls: Arc<Mutex<Vec<RecordedCall>>>,
    metrics: Arc<crate::telemetry::plugin_metrics::PluginMetrics>,
}

impl PluginUnderTest {
    /// Load `wasm` with `config` (JSON text) and `stubs`. Compiled code is
    /// cached in `cache_dir` if given.
    pub async fn load(
        wasm: &Path,
        config: &str,
        stubs: Stubs,
        cache_dir: Option<&Path>,
    ) -> Result<Self, LoadError> {
        Self::load_with_config_file(wasm, config, None, stubs, cache_dir).await
    }

    /// [`load`](Self::load), naming the file `config` came from in errors.
    pub async fn load_with_config_file(
        wasm: &Path,
        config: &str,
        config_file: Option<&Path>,
        stubs: Stubs,
        cache_dir: Option<&Path>,
    ) -> Result<Self, LoadError> {
        let bytes = std::fs::read(wasm).map_err(|e| LoadError {
            file: wasm.to_path_buf(),
            message: format!("cannot be read: {e}"),
        })?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rate: Arc<dyn RateStore> = match stubs.rate {
            RateStub::Real => Arc::new(MemoryRateStore::new()),
            RateStub::Allow => Arc::new(FixedRate(true)),
            RateStub::Deny => Arc::new(FixedRate(false)),
        };
        let limits = Limits::default();
        let budgets = crate::config::Budgets::default();
        let outbound = Arc::new(StubOutbound {
            stubs,
            calls: calls.clone(),
        });
        let caps = Capabilities::new(outbound, &limits, &budgets)
            .with_rate(rate)
            .with_log_sink(logs.clone());
        let metrics = caps.metrics.clone();
        let caps = Arc::new(caps);
        let settings = PluginSettings {
            pool: PoolSettings {
                deadline: std::time::Duration::from_millis(limits.hook_deadline_ms),
                max_memory: limits.plugin_memory_bytes(),
                max_instances: 4,
                max_calls: u64::MAX,
                idle_lists: 1,
            },
            cache_dir: cache_dir.map(Path::to_path_buf),
        };
        let plugin = LoadedPlugin::from_bytes(
            &runtime()?,
            wasm,
            bytes,
            config.to_string(),
            config_file.map(Path::to_path_buf),
            &settings,
            caps,
        )
        .await?;
        Ok(PluginUnderTest {
            plugin,
            logs,
            calls,
            metrics,
        })
    }

    /// Lines the plugin logged so far (and forget them).
    pub fn take_logs(&self) -> Vec<LogLine> {
        std::mem::take(&mut *lock(&self.logs))
    }

    /// Every metric sample the plugin has emitted so far, by the names it
    /// gave (counters without `_total`; `NAME_count`, `NAME_sum` and
    /// `NAME_bucket` for histograms) and without the `plugin` label.
    pub fn metrics(&self) -> Vec<MetricSample> {
        metrics::samples(&self.metrics, self.plugin.name())
    }

    /// The value of metric `name` in the series with exactly these labels
    /// (in any order), or `None` when that series was never touched.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.metrics().into_iter().find_map(|sample| {
            let same = sample.name == name
                && sample.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v));
            same.then_some(sample.value)
        })
    }

    /// The routes the plugin's `init` declared it acts on
    /// (`interest.only-routes`); `None`: every route.
    pub fn routes(&self) -> Option<&[String]> {
        self.plugin.routes()
    }

    /// Outbound calls made so far (and forget them).
    pub fn take_calls(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut *lock(&self.calls))
    }

    /// Run `on-request`.
    pub async fn on_request(&self, request: &TestRequest) -> Result<RequestOutcome, GatewayError> {
        let state = request_state(request).map_err(GatewayError::Internal)?;
        let (ex, action) = self.call(Exchange::request(Box::new(state))).await?;
        let mut state = ex.req;
        // A `wasi:http` handler's answer streams; it is read whole here.
        let action = match state.answer.take() {
            Some(answer) => TestAction::Respond {
                reply: test_response(read_whole(*answer).await),
            },
            None => test_action(action),
        };
        let upstream = state.upstream.clone();
        Ok(RequestOutcome {
            action,
            request: test_request(*state).await,
            upstream,
        })
    }

    /// Run `on-response` for `request` and `response`.
    pub async fn on_response(
        &self,
        request: &TestRequest,
        response: &TestResponse,
    ) -> Result<ResponseOutcome, GatewayError> {
        let state = request_state(request).map_err(GatewayError::Internal)?;
        let response = response_state(response).map_err(GatewayError::Internal)?;
        let (ex, action) = self
            .call(Exchange::response(Box::new(state), Box::new(response)))
            .await?;
        let response = ex
            .resp
            .ok_or_else(|| GatewayError::Internal("on-response gave no response back".into()))?;
        Ok(ResponseOutcome {
            action: test_action(action),
            response: test_response(read_whole(*response).await),
        })
    }

    /// One hook call, as the gateway makes it (without governance).
    async fn call(&self, ex: Exchange) -> Result<(Exchange, Action), GatewayError> {
        self.plugin.call(ex).await.outcome.map_err(|f| f.error)
    }
}

fn request_state(request: &TestRequest) -> Result<RequestState, String> {
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str());
    for (name, value) in &request.headers.0 {
        builder = builder.header(name, value);
    }
    let (head, ()) = builder
        .body(())
        .map_err(|e| format!("invalid test request: {e}"))?
        .into_parts();
    let mut state = RequestState::new(
        head,
        BodyState::buffered(Bytes::from(request.body.bytes()?)),
        request.client,
    );
    if let Some(ip) = request.client_ip {
        state.client_ip = ip;
    }
    state.context = request.context.clone().into_iter().collect();
    Ok(state)
}

fn response_state(response: &TestResponse) -> Result<ResponseState, String> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers.0 {
        builder = builder.header(name, value);
    }
    let (head, ()) = builder
        .body(())
        .map_err(|e| format!("invalid test response: {e}"))?
        .into_parts();
    Ok(ResponseState {
        head,
        body: BodyState::buffered(Bytes::from(response.body.bytes()?)),
    })
}

fn header_pairs(headers: &http::HeaderMap) -> Headers {
    Headers(
        headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    )
}

async fn test_request(mut state: RequestState) -> TestRequest {
    let body = state.body.buffer(u64::MAX).await.unwrap_or_default();
    TestRequest {
        method: state.head.method.to_string(),
        path: state.path_with_query().to_string(),
        headers: header_pairs(&state.head.headers),
        body: BodyText::from_bytes(&body),
        client: state.client,
        client_ip: (state.client_ip != state.client.ip()).then_some(state.client_ip),
        context: state.context.into_iter().collect(),
    }
}

/// `response` with its body read into memory (up to the default body
/// limit), so a streaming body is shown too.
async fn read_whole(mut response: ResponseState) -> ResponseState {
    let _ = response.body.buffer(Limits::default().max_body_bytes).await;
    response
}

fn test_response(response: ResponseState) -> TestResponse {
    let body = match &response.body {
        BodyState::Buffered { data, .. } => data.to_vec(),
        BodyState::Streaming(_) => Vec::new(),
    };
    TestResponse {
        status: response.head.status.as_u16(),
        headers: header_pairs(&response.head.headers),
        body: BodyText::from_bytes(&body),
    }
}

/// What the hook returned, as it returned it: the testkit does not act on
/// `respond-then-continue` or `wait` (nor judge them in `on-response`,
/// where the gateway counts them as a failure); a test asserts on them.
fn test_action(action: Action) -> TestAction {
    use crate::runtime::bindings::{Action, Reply};
    let reply = |reply: Reply| TestResponse {
        status: reply.status,
        headers: Headers(reply.headers),
        body: BodyText::from_bytes(&reply.body),
    };
    match action {
        Action::Continue => TestAction::Continue,
        Action::Respond(r) => TestAction::Respond { reply: reply(r) },
        Action::RespondThenContinue(r) => TestAction::RespondThenContinue { reply: reply(r) },
        Action::Wait(wait) => TestAction::Wait {
            key: wait.key,
            timeout_ms: wait.timeout_ms,
        },
    }
}

/// Whether `actual` contains everything in `expected`: objects by key
/// (extra keys allowed), arrays and values exactly. Returns the first
/// difference as `path: expected X, found Y`.
pub fn subset_mismatch(
    expected: &serde_json::Value,
    actual: &serde_json::Value,
    path: &str,
) -> Option<String> {
    use serde_json::Value;
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(k, v)| match a.get(k) {
            Some(found) => subset_mismatch(v, found, &format!("{path}/{k}")),
            None => Some(format!("{path}/{k}: expected {v}, found nothing")),
        }),
        (e, a) if e == a => None,
        (e, a) => Some(format!(
            "{}: expected {e}, found {a}",
            if path.is_empty() { "/" } else { path }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_match_objects_by_key() {
        let actual = json!({"action": "respond", "reply": {"status": 422, "headers": {"a": "b"}}, "logs": []});
        assert_eq!(
            subset_mismatch(&json!({"reply": {"status": 422}}), &actual, ""),
            None
        );
        let miss = subset_mismatch(&json!({"reply": {"status": 200}}), &actual, "").unwrap();
        assert_eq!(miss, "/reply/status: expected 200, found 422");
        assert!(
            subset_mismatch(&json!({"nope": 1}), &actual, "")
                .unwrap()
                .contains("found nothing")
        );
    }
}
