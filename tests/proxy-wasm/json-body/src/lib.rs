//! Rewrites a JSON request body: the value of `"password"` is replaced by
//! `"***"` and a `"filtered": true` member is added; a body that is not a
//! JSON object is refused with 400. The response body gets a trailing line.
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Json) });
}}

struct Json;

impl Context for Json {}

impl HttpContext for Json {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        // The body changes length: the gateway sets the new one.
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        let text = String::from_utf8_lossy(&body).into_owned();
        let trimmed = text.trim();
        if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
            self.send_http_response(400, vec![("content-type", "text/plain")], Some(b"expected a JSON object\n"));
            return Action::Pause;
        }
        let rewritten = redact(trimmed);
        self.set_http_request_body(0, size, rewritten.as_bytes());
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        self.set_http_response_body(size, 0, b"\n-- filtered by pw-json-body\n");
        Action::Continue
    }
}

/// `{"a":1,"password":"x"}` → `{"a":1,"password":"***","filtered":true}`.
fn redact(object: &str) -> String {
    let mut out = String::new();
    let mut rest = object;
    while let Some(at) = rest.find("\"password\"") {
        out.push_str(&rest[..at]);
        out.push_str("\"password\"");
        rest = &rest[at + "\"password\"".len()..];
        let colon = rest.find(':').map_or(0, |c| c + 1);
        out.push_str(&rest[..colon]);
        rest = rest[colon..].trim_start();
        if let Some(stripped) = rest.strip_prefix('"') {
            let end = stripped.find('"').map_or(stripped.len(), |e| e + 1);
            rest = &stripped[end.min(stripped.len())..];
            out.push_str("\"***\"");
        }
    }
    out.push_str(rest);
    let body = out.trim_end().trim_end_matches('}').trim_end();
    let comma = if body.ends_with('{') { "" } else { "," };
    format!("{body}{comma}\"filtered\":true}}")
}
