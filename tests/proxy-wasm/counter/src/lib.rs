//! A request counter in shared data (compare-and-swap, retried on a
//! conflict), answered in `x-hits`, and metrics of all three kinds.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Counter { hits: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Counter {
    hits: u64,
}

impl Context for Counter {}

impl HttpContext for Counter {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        loop {
            let (value, cas) = self.get_shared_data("hits");
            let current = value
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let next = current + 1;
            match self.set_shared_data("hits", Some(next.to_string().as_bytes()), cas) {
                Ok(()) => {
                    self.hits = next;
                    break;
                }
                Err(Status::CasMismatch) => continue,
                Err(other) => panic!("set_shared_data: {other:?}"),
            }
        }
        let requests = hostcalls::define_metric(MetricType::Counter, "pw_counter.requests").unwrap();
        hostcalls::increment_metric(requests, 1).unwrap();
        let last = hostcalls::define_metric(MetricType::Gauge, "pw_counter.last_hits").unwrap();
        hostcalls::record_metric(last, self.hits).unwrap();
        let sizes = hostcalls::define_metric(MetricType::Histogram, "pw_counter.header_count").unwrap();
        hostcalls::record_metric(sizes, self.get_http_request_headers().len() as u64).unwrap();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.set_http_response_header("x-hits", Some(&self.hits.to_string()));
        Action::Continue
    }
}
