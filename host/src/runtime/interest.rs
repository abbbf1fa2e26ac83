//! `interest`: the routes a plugin acts on, declared from `init`. The host
//! only records them here; the pipeline builds its per-route chains from
//! them (`governance/scope.rs`), so a plugin is not called where it would
//! do nothing.

use super::bindings::weir::plugin::interest;
pub use super::host::Declared;
use super::host::HostState;

type Res<T> = wasmtime::Result<T>;

/// The most route names a plugin may declare: far more than any route
/// table, and a bound on what a runaway `init` can make the host keep.
pub const MAX_ROUTES: usize = 4096;

impl interest::Host for HostState {
    fn only_routes(&mut self, routes: Vec<String>) -> Res<()> {
        // From a hook the chains are long built: ignored, as documented.
        let Some(declared) = self.declaring.as_mut() else {
            return Ok(());
        };
        let list = declared.routes.get_or_insert_with(Vec::new);
        for route in routes {
            if !list.contains(&route) {
                list.push(route);
            }
        }
        if list.len() > MAX_ROUTES {
            return Err(wasmtime::Error::msg(format!(
                "interest.only-routes: more than {MAX_ROUTES} routes declared"
            )));
        }
        Ok(())
    }
}
