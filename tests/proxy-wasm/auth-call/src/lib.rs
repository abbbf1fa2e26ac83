//! External authorization, as Envoy filters do it: each request's
//! `authorization` header is sent to the `auth` upstream (the cluster name
//! is the plugin configuration, `auth` when empty) with
//! `dispatch_http_call`; the request pauses until the answer, then goes on
//! with `x-user` set (200) or is denied with 403. A call the host refuses
//! (an ungranted upstream) is answered 503.
use std::time::Duration;

use proxy_wasm::traits::*;
use proxy_wasm::types::*;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { cluster: String::new() }) });
}}

struct Root {
    cluster: String,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let cluster = String::from_utf8_lossy(&bytes).trim().to_string();
        self.cluster = if cluster.is_empty() { "auth".into() } else { cluster };
        true
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Auth { cluster: self.cluster.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Auth {
    cluster: String,
}

impl HttpContext for Auth {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let token = self.get_http_request_header("authorization").unwrap_or_default();
        let call = self.dispatch_http_call(
            &self.cluster,
            vec![(":method", "GET"), (":path", "/check"), (":authority", "auth"), ("authorization", &token)],
            None,
            vec![],
            Duration::from_secs(2),
        );
        match call {
            Ok(_) => Action::Pause,
            Err(status) => {
                let body = format!("auth call refused: {status:?}\n");
                self.send_http_response(503, vec![], Some(body.as_bytes()));
                Action::Pause
            }
        }
    }
}

impl Context for Auth {
    fn on_http_call_response(&mut self, _: u32, _: usize, _: usize, _: usize) {
        let status = self.get_http_call_response_header(":status");
        if status.as_deref() == Some("200") {
            let user = self.get_http_call_response_header("x-user").unwrap_or_default();
            self.set_http_request_header("x-user", Some(&user));
            self.resume_http_request();
        } else {
            self.send_http_response(403, vec![("x-auth-status", status.as_deref().unwrap_or("none"))], Some(b"denied\n"));
        }
    }
}
