//! Header edits both ways, a 403 local reply, a trap on demand, the plugin
//! configuration passed through as opaque bytes, and properties read back.
use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: String::new() }) });
}}

struct Root {
    config: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        self.config = String::from_utf8_lossy(&bytes).into_owned();
        // A configuration that says so is refused: the gateway must not load it.
        !self.config.contains("reject")
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Headers { config: self.config.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Headers {
    config: String,
}

impl Context for Headers {}

impl HttpContext for Headers {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if self.get_http_request_header("x-trap").is_some() {
            panic!("trap requested");
        }
        if self.get_http_request_header("x-deny").is_some() {
            self.send_http_response(403, vec![("x-denied-by", "pw-headers")], Some(b"denied by filter\n"));
            return Action::Pause;
        }
        self.add_http_request_header("x-pw-request", "yes");
        self.set_http_request_header("x-replace", Some("replaced"));
        self.set_http_request_header("x-remove", None);
        if let Some(path) = self.get_http_request_header(":path") {
            self.set_http_request_header("x-pw-seen-path", Some(&path));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.add_http_response_header("x-pw-response", "yes");
        self.set_http_response_header("x-pw-config", Some(&self.config));
        let path = self.get_property(vec!["request", "path"]).unwrap_or_default();
        self.set_http_response_header("x-pw-property-path", Some(&String::from_utf8_lossy(&path)));
        let name = self.get_property(vec!["plugin_name"]).unwrap_or_default();
        self.set_http_response_header("x-pw-plugin-name", Some(&String::from_utf8_lossy(&name)));
        self.set_http_response_header("server", None);
        Action::Continue
    }
}
