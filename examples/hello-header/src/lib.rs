//! Adds a header to every response: `x-hello: weir` unless configured.

use weir_sdk::{Action, Hooks, Plugin, Request, Response, export_plugin};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    name: String,
    value: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "x-hello".into(),
            value: "weir".into(),
        }
    }
}

struct Hello(Config);

impl Plugin for Hello {
    type Config = Config;
    const HOOKS: Hooks = Hooks::ON_RESPONSE;

    fn new(config: Config) -> Result<Self, String> {
        Ok(Hello(config))
    }

    fn on_response(&mut self, _req: &Request, resp: &Response) -> Action {
        if let Err(e) = resp.set_header(&self.0.name, &self.0.value) {
            weir_sdk::warn!("cannot set {}: {e}", self.0.name);
        }
        Action::Continue
    }
}

export_plugin!(Hello);
