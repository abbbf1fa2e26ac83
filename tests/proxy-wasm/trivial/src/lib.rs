//! The least a filter does: one request header added. For the benchmark
//! of a plugin kind's own cost (bench/plugin-kinds.sh).
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(Trivial) });
}}

struct Trivial;

impl Context for Trivial {}

impl HttpContext for Trivial {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.add_http_request_header("x-pw", "1");
        Action::Continue
    }
}
