//! Entry points for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature: the route table built from any config text and
//! matched against any request, as `init` and `on-request` do.

use crate::config::Config;
use crate::table::{Facts, Outcome, PathKind, Table};

/// A request as the table sees it.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub header: Option<&'a str>,
    pub query: Option<&'a str>,
}

impl Facts for Request<'_> {
    fn method(&self) -> &str {
        self.method
    }
    fn path(&self) -> &str {
        self.path
    }
    fn host(&self) -> Option<&str> {
        self.host
    }
    fn header(&self, _: &str) -> Option<String> {
        self.header.map(str::to_string)
    }
    fn query(&self, name: &str) -> Option<String> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| v.to_string())
        })
    }
}

/// Build the table `config` (the plugin's JSON) describes and match
/// `request`: the route's name and the rewritten path, if it matched.
/// Errors are the config's, as `init` reports them.
pub fn route(config: &str, request: &Request<'_>) -> Result<Option<(String, String)>, String> {
    let config: Config = serde_json::from_str(config).map_err(|e| e.to_string())?;
    let table = Table::build(config.routes)?;
    let Outcome::Matched(matched) = table.find(request) else {
        return Ok(None);
    };
    let path = match (&matched.route.rewrite, matched.kind) {
        (Some(rewrite), _) => rewrite.render(&matched.captures),
        (None, PathKind::Prefix(len)) => request.path[len..].to_string(),
        _ => request.path.to_string(),
    };
    Ok(Some((matched.route.name.clone(), path)))
}
