//! The router's table built from routes with any path, template, prefix,
//! regex and rewrite, and matched against any request, as its `init` and
//! `on-request` do. A config is refused with a message or built; a built
//! table answers every request. A route matched by an exact path or a
//! template without a rewrite keeps the path; a prefix match's remainder
//! is a suffix of the path.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use weir_plugin_router::fuzzing::{Request, route};

#[derive(Arbitrary, Debug)]
struct Route {
    /// 0: `path`, 1: `path_prefix`, 2: `path_regex`.
    kind: u8,
    pattern: String,
    rewrite: Option<String>,
    strip_prefix: bool,
    methods: Option<Vec<String>>,
    host: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    routes: Vec<Route>,
    method: String,
    path: String,
    host: Option<String>,
    query: Option<String>,
    /// Config text as it is, instead of `routes`.
    raw: Option<String>,
}

fuzz_target!(|input: Input| {
    let config = match &input.raw {
        Some(raw) => raw.clone(),
        None => {
            let routes: Vec<Value> = input
                .routes
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let key = ["path", "path_prefix", "path_regex"][usize::from(r.kind % 3)];
                    let mut matcher = json!({ key: r.pattern });
                    if let Some(methods) = &r.methods {
                        matcher["methods"] = json!(methods);
                    }
                    if let Some(host) = &r.host {
                        matcher["host"] = json!(host);
                    }
                    let mut route = json!({"name": format!("r{i}"), "match": matcher,
                                           "strip_prefix": r.strip_prefix});
                    if let Some(rewrite) = &r.rewrite {
                        route["rewrite"] = json!(rewrite);
                    }
                    route
                })
                .collect();
            json!({ "routes": routes }).to_string()
        }
    };
    let request = Request {
        method: &input.method,
        path: &input.path,
        host: input.host.as_deref(),
        header: None,
        query: input.query.as_deref(),
    };
    let _ = route(&config, &request);
});
