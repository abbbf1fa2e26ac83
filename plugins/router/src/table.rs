//! The compiled route table. Built once in `init`; each request is matched
//! without scanning every route:
//!
//! 1. **exact** paths: one hash lookup;
//! 2. **templates**: a walk down a segment trie (literal before `{param}`
//!    before `{*rest}` at each level);
//! 3. **prefixes**: one hash lookup per segment boundary of the path,
//!    longest first;
//! 4. **regexes**: tried in order.
//!
//! Candidates come out most specific first, ties in config order. The first
//! whose host, header and query conditions hold and whose methods allow the
//! request wins. If some only failed on the method, the answer is 405 with
//! their methods in `Allow`.

use std::collections::HashMap;

use regex_lite::Regex;

use crate::config::{HeaderEdits, MatchConfig, RouteConfig};
use crate::template::{self, Rewrite, Segment};

/// What the table needs to know about a request.
pub trait Facts {
    /// Upper-case method.
    fn method(&self) -> &str;
    /// Normalized path, no query.
    fn path(&self) -> &str;
    /// Host, lower-case, without port.
    fn host(&self) -> Option<&str>;
    /// First value of a header.
    fn header(&self, name: &str) -> Option<String>;
    /// First value of a query parameter (not percent-decoded).
    fn query(&self, name: &str) -> Option<String>;
}

/// How a route's path matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Exact path.
    Exact,
    /// Template.
    Template,
    /// Prefix of this many bytes.
    Prefix(usize),
    /// Regex.
    Regex,
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Its upstream, if it has one.
    pub upstream: Option<String>,
    methods: Option<Vec<String>>,
    host: Option<HostMatch>,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// Rewrite template, if any.
    pub rewrite: Option<Rewrite>,
    /// Strip the matched prefix.
    pub strip_prefix: bool,
    /// Header edits.
    pub request_headers: HeaderEdits,
    /// Names of template parameters, in order.
    params: Vec<String>,
}

#[derive(Debug)]
enum HostMatch {
    Exact(String),
    /// `*.example.com` → `.example.com`: any subdomain, at any depth.
    Suffix(String),
}

/// A successful match.
#[derive(Debug)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a Route,
    /// How its path matched.
    pub kind: PathKind,
    /// Captured parameters, by name.
    pub captures: Vec<(String, String)>,
}

/// The result of matching a request.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// A route takes the request.
    Matched(Matched<'a>),
    /// Routes exist for the path, but not for this method.
    MethodNotAllowed(Vec<String>),
    /// No route.
    NotFound,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Routes whose template ends here.
    routes: Vec<usize>,
    /// Routes whose template ends with `{*rest}` here.
    catch_all: Vec<usize>,
}

/// All routes, indexed.
#[derive(Debug, Default)]
pub struct Table {
    routes: Vec<Route>,
    exact: HashMap<String, Vec<usize>>,
    templates: Node,
    prefixes: HashMap<String, Vec<usize>>,
    regexes: Vec<RegexRoute>,
}

#[derive(Debug)]
struct RegexRoute {
    index: usize,
    regex: Regex,
    /// Every match starts with this.
    literal: String,
}

/// One stage of matching: adds the candidates of one kind of path match.
type Stage = fn(&Table, &str, &mut Vec<Candidate>);

/// A candidate before its non-path conditions are checked.
struct Candidate {
    index: usize,
    kind: PathKind,
    captures: Vec<(String, String)>,
}

fn trim_prefix(prefix: &str) -> &str {
    if prefix.len() > 1 {
        prefix.trim_end_matches('/')
    } else {
        prefix
    }
}

impl Table {
    /// Compile `routes`; errors name the route.
    pub fn build(configs: Vec<RouteConfig>) -> Result<Table, String> {
        let mut table = Table::default();
        for (index, config) in configs.into_iter().enumerate() {
            let name = config.name.clone();
            table
                .add(index, config)
                .map_err(|why| format!("route `{name}`: {why}"))?;
        }
        Ok(table)
    }

    fn add(&mut self, index: usize, config: RouteConfig) -> Result<(), String> {
        let m = &config.matcher;
        let given = [
            m.path.is_some(),
            m.path_prefix.is_some(),
            m.path_regex.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("`match` needs exactly one of `path`, `path_prefix`, `path_regex`".into());
        }
        if config.strip_prefix && m.path_prefix.is_none() {
            return Err("`strip_prefix` needs `match.path_prefix`".into());
        }
        if config.strip_prefix && config.rewrite.is_some() {
            return Err("use either `strip_prefix` or `rewrite`, not both".into());
        }
        let mut params = Vec::new();
        if let Some(path) = &m.path {
            if template::is_template(path) {
                let segments = template::parse(path)?;
                for s in &segments {
                    if let Segment::Param(n) | Segment::CatchAll(n) = s {
                        params.push(n.clone());
                    }
                }
                self.insert_template(&segments, index);
            } else {
                if !path.starts_with('/') {
                    return Err(format!("path `{path}` must start with `/`"));
                }
                self.exact.entry(path.clone()).or_default().push(index);
            }
        }
        if let Some(prefix) = &m.path_prefix {
            if !prefix.starts_with('/') {
                return Err(format!("path_prefix `{prefix}` must start with `/`"));
            }
            self.prefixes
                .entry(trim_prefix(prefix).to_string())
                .or_default()
                .push(index);
        }
        if let Some(pattern) = &m.path_regex {
            let regex = Regex::new(pattern).map_err(|e| format!("path_regex `{pattern}`: {e}"))?;
            for (i, name) in regex.capture_names().enumerate().skip(1) {
                params.push(i.to_string());
                if let Some(name) = name {
                    params.push(name.to_string());
                }
            }
            self.regexes.push(RegexRoute {
                index,
                literal: literal_prefix(pattern),
                regex,
            });
        }
        let rewrite = match &config.rewrite {
            Some(t) => Some(Rewrite::parse(t, &params)?),
            None => None,
        };
        let route = Route {
            name: config.name,
            upstream: config.upstream,
            methods: m
                .methods
                .as_ref()
                .map(|ms| ms.iter().map(|x| x.to_ascii_uppercase()).collect()),
            host: parse_host(m)?,
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            query: m
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            rewrite,
            strip_prefix: config.strip_prefix,
            request_headers: config.request_headers,
            params,
        };
        self.routes.push(route);
        Ok(())
    }

    fn insert_template(&mut self, segments: &[Segment], index: usize) {
        let mut node = &mut self.templates;
        for segment in segments {
            match segment {
                Segment::Literal(text) => node = node.literal.entry(text.clone()).or_default(),
                Segment::Param(_) => node = node.param.get_or_insert_with(Box::default),
                Segment::CatchAll(_) => {
                    node.catch_all.push(index);
                    return;
                }
            }
        }
        node.routes.push(index);
    }

    /// Match a request. Stages run in order of specificity and each runs
    /// only if the ones before it chose nothing.
    pub fn find<'a>(&'a self, facts: &dyn Facts) -> Outcome<'a> {
        let path = facts.path();
        let stages: [Stage; 4] = [
            Table::exact_candidates,
            Table::template_candidates,
            Table::prefix_candidates,
            Table::regex_candidates,
        ];
        let mut allowed: Vec<String> = Vec::new();
        let mut candidates = Vec::new();
        for stage in stages {
            candidates.clear();
            stage(self, path, &mut candidates);
            for candidate in candidates.drain(..) {
                let route = &self.routes[candidate.index];
                if !route.conditions_hold(facts) {
                    continue;
                }
                match &route.methods {
                    Some(methods) if !methods.iter().any(|m| m == facts.method()) => {
                        for m in methods {
                            if !allowed.contains(m) {
                                allowed.push(m.clone());
                            }
                        }
                    }
                    _ => {
                        let captures = self.named_captures(route, candidate.captures);
                        return Outcome::Matched(Matched {
                            route,
                            kind: candidate.kind,
                            captures,
                        });
                    }
                }
            }
        }
        if allowed.is_empty() {
            Outcome::NotFound
        } else {
            Outcome::MethodNotAllowed(allowed)
        }
    }

    /// Template captures come out positional; give them their names.
    fn named_captures(
        &self,
        route: &Route,
        captures: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        captures
            .into_iter()
            .enumerate()
            .map(|(i, (name, value))| {
                if name.is_empty() {
                    (route.params.get(i).cloned().unwrap_or_default(), value)
                } else {
                    (name, value)
                }
            })
            .collect()
    }

    fn exact_candidates(&self, path: &str, out: &mut Vec<Candidate>) {
        if let Some(indexes) = self.exact.get(path) {
            out.extend(indexes.iter().map(|&index| Candidate {
                index,
                kind: PathKind::Exact,
                captures: Vec::new(),
            }));
        }
    }

    fn template_candidates(&self, path: &str, out: &mut Vec<Candidate>) {
        let segments: Vec<&str> = template::segments(path).collect();
        walk(&self.templates, &segments, &mut Vec::new(), out);
    }

    /// Segment-boundary prefixes of the path, longest first; `/` last.
    fn prefix_candidates(&self, path: &str, out: &mut Vec<Candidate>) {
        let mut end = path.len();
        loop {
            let prefix = &path[..end];
            let root = prefix.is_empty() || prefix == "/";
            let (key, len) = if root { ("/", 0) } else { (prefix, end) };
            if let Some(indexes) = self.prefixes.get(key) {
                out.extend(indexes.iter().map(|&index| Candidate {
                    index,
                    kind: PathKind::Prefix(len),
                    captures: Vec::new(),
                }));
            }
            if root {
                break;
            }
            end = prefix.rfind('/').unwrap_or(0);
        }
    }

    fn regex_candidates(&self, path: &str, out: &mut Vec<Candidate>) {
        for entry in &self.regexes {
            // Most patterns start with a literal (`^/old/...`): a cheap
            // string check skips the regex engine for paths that cannot match.
            if !path.starts_with(entry.literal.as_str()) {
                continue;
            }
            let Some(caps) = entry.regex.captures(path) else {
                continue;
            };
            let mut captures = Vec::new();
            for (i, name) in entry.regex.capture_names().enumerate().skip(1) {
                let value = caps.get(i).map_or("", |m| m.as_str()).to_string();
                if let Some(name) = name {
                    captures.push((name.to_string(), value.clone()));
                }
                captures.push((i.to_string(), value));
            }
            out.push(Candidate {
                index: entry.index,
                kind: PathKind::Regex,
                captures,
            });
        }
    }
}

/// The literal text every match of `pattern` starts with: what follows a
/// leading `^` up to the first metacharacter (empty if unanchored).
fn literal_prefix(pattern: &str) -> String {
    // An alternation can start anywhere (`^/x|^/y`): no safe prefix.
    let Some(rest) = pattern.strip_prefix('^').filter(|_| !pattern.contains('|')) else {
        return String::new();
    };
    let literal: String = rest
        .chars()
        .take_while(|c| !".^$*+?()[]{}|\\".contains(*c))
        .collect();
    // A quantifier applies to the character before it (`^/ab?`), so that
    // character is not certain to be there.
    match rest[literal.len()..].chars().next() {
        Some('*' | '?' | '{') => {
            let mut literal = literal;
            literal.pop();
            literal
        }
        _ => literal,
    }
}

/// Depth-first over the template trie: literal, then parameter, then
/// catch-all, so more literal templates come first.
fn walk(node: &Node, segments: &[&str], captured: &mut Vec<String>, out: &mut Vec<Candidate>) {
    let Some((first, rest)) = segments.split_first() else {
        out.extend(node.routes.iter().map(|&index| {
            Candidate {
                index,
                kind: PathKind::Template,
                captures: captured
                    .iter()
                    .map(|v| (String::new(), v.clone()))
                    .collect(),
            }
        }));
        return;
    };
    if let Some(child) = node.literal.get(*first) {
        walk(child, rest, captured, out);
    }
    if let Some(child) = &node.param
        && !first.is_empty()
    {
        captured.push((*first).to_string());
        walk(child, rest, captured, out);
        captured.pop();
    }
    if !node.catch_all.is_empty() {
        let remainder = segments.join("/");
        for &index in &node.catch_all {
            let mut captures: Vec<(String, String)> = captured
                .iter()
                .map(|v| (String::new(), v.clone()))
                .collect();
            captures.push((String::new(), remainder.clone()));
            out.push(Candidate {
                index,
                kind: PathKind::Template,
                captures,
            });
        }
    }
}

fn parse_host(m: &MatchConfig) -> Result<Option<HostMatch>, String> {
    let Some(host) = &m.host else { return Ok(None) };
    let host = host.to_ascii_lowercase();
    if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err(format!("host `{host}`: use `*.example.com`"));
        }
        return Ok(Some(HostMatch::Suffix(format!(".{suffix}"))));
    }
    if host.contains('*') {
        return Err(format!(
            "host `{host}`: `*` is only allowed as the first label"
        ));
    }
    Ok(Some(HostMatch::Exact(host)))
}

impl Route {
    fn conditions_hold(&self, facts: &dyn Facts) -> bool {
        if let Some(host_match) = &self.host {
            let Some(host) = facts.host() else {
                return false;
            };
            let ok = match host_match {
                HostMatch::Exact(h) => host == h,
                HostMatch::Suffix(suffix) => {
                    host.len() > suffix.len() && host.ends_with(suffix.as_str())
                }
            };
            if !ok {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, value)| facts.header(name).as_deref() == Some(value.as_str()))
            && self
                .query
                .iter()
                .all(|(name, value)| facts.query(name).as_deref() == Some(value.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    struct Req {
        method: &'static str,
        path: &'static str,
        host: Option<&'static str>,
        headers: Vec<(&'static str, &'static str)>,
        query: Vec<(&'static str, &'static str)>,
    }

    impl Facts for Req {
        fn method(&self) -> &str {
            self.method
        }
        fn path(&self) -> &str {
            self.path
        }
        fn host(&self) -> Option<&str> {
            self.host
        }
        fn header(&self, name: &str) -> Option<String> {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
        fn query(&self, name: &str) -> Option<String> {
            self.query
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn get(path: &'static str) -> Req {
        Req {
            method: "GET",
            path,
            host: None,
            headers: vec![],
            query: vec![],
        }
    }

    fn table(json: serde_json::Value) -> Table {
        let config: Config = serde_json::from_value(json).unwrap();
        Table::build(config.routes).unwrap()
    }

    fn matched<'a>(t: &'a Table, req: &Req) -> Matched<'a> {
        match t.find(req) {
            Outcome::Matched(m) => m,
            other => panic!("no match for {}: {other:?}", req.path),
        }
    }

    #[test]
    fn specificity_exact_then_template_then_longest_prefix_then_regex() {
        let t = table(serde_json::json!({"routes": [
            {"name": "regex", "match": {"path_regex": "^/api/.*$"}, "upstream": "u"},
            {"name": "root", "match": {"path_prefix": "/"}, "upstream": "u"},
            {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "u"},
            {"name": "users", "match": {"path_prefix": "/api/users"}, "upstream": "u"},
            {"name": "user", "match": {"path": "/api/users/{id}"}, "upstream": "u"},
            {"name": "me", "match": {"path": "/api/users/me"}, "upstream": "u"},
        ]}));
        assert_eq!(matched(&t, &get("/api/users/me")).route.name, "me");
        let m = matched(&t, &get("/api/users/7"));
        assert_eq!(m.route.name, "user");
        assert_eq!(m.captures, vec![("id".to_string(), "7".to_string())]);
        assert_eq!(matched(&t, &get("/api/users/7/orders")).route.name, "users");
        assert_eq!(matched(&t, &get("/api/orders")).route.name, "api");
        assert_eq!(matched(&t, &get("/apix")).route.name, "root");
        assert_eq!(matched(&t, &get("/")).route.name, "root");
    }

    #[test]
    fn regex_is_last_and_ties_go_to_config_order() {
        let t = table(serde_json::json!({"routes": [
            {"name": "first", "match": {"path_regex": "^/old/(.*)$"}, "upstream": "u"},
            {"name": "second", "match": {"path_regex": "^/old/(?P<rest>.*)$"}, "upstream": "u"},
        ]}));
        let m = matched(&t, &get("/old/page"));
        assert_eq!(m.route.name, "first");
        assert_eq!(m.captures, vec![("1".to_string(), "page".to_string())]);
        assert!(matches!(t.find(&get("/new")), Outcome::NotFound));
    }

    #[test]
    fn template_literals_beat_params_and_catch_all_takes_the_rest() {
        let t = table(serde_json::json!({"routes": [
            {"name": "files", "match": {"path": "/files/{*path}"}, "upstream": "u"},
            {"name": "file", "match": {"path": "/files/{name}"}, "upstream": "u"},
            {"name": "readme", "match": {"path": "/files/README"}, "upstream": "u"},
        ]}));
        assert_eq!(matched(&t, &get("/files/README")).route.name, "readme");
        assert_eq!(matched(&t, &get("/files/a.txt")).route.name, "file");
        let m = matched(&t, &get("/files/a/b/c.txt"));
        assert_eq!(m.route.name, "files");
        assert_eq!(
            m.captures,
            vec![("path".to_string(), "a/b/c.txt".to_string())]
        );
        assert!(matches!(t.find(&get("/files")), Outcome::NotFound));
    }

    #[test]
    fn host_header_and_query_conditions() {
        let t = table(serde_json::json!({"routes": [
            {"name": "v2", "match": {"path_prefix": "/orders", "host": "api.example.com", "headers": {"x-version": "2"}}, "upstream": "u"},
            {"name": "wild", "match": {"path_prefix": "/orders", "host": "*.example.com", "query": {"beta": "1"}}, "upstream": "u"},
        ]}));
        let mut req = get("/orders/1");
        req.host = Some("api.example.com");
        req.headers = vec![("x-version", "2")];
        assert_eq!(matched(&t, &req).route.name, "v2");
        req.headers = vec![];
        assert!(matches!(t.find(&req), Outcome::NotFound));
        req.query = vec![("beta", "1")];
        assert_eq!(matched(&t, &req).route.name, "wild");
        req.host = Some("a.b.example.com");
        assert_eq!(matched(&t, &req).route.name, "wild");
        req.host = Some("example.com");
        assert!(matches!(t.find(&req), Outcome::NotFound));
    }

    #[test]
    fn wrong_method_is_405_with_the_allowed_methods() {
        let t = table(serde_json::json!({"routes": [
            {"name": "read", "match": {"path": "/users/{id}", "methods": ["GET", "HEAD"]}, "upstream": "u"},
            {"name": "write", "match": {"path": "/users/{id}", "methods": ["put"]}, "upstream": "u"},
        ]}));
        let mut req = get("/users/1");
        req.method = "DELETE";
        match t.find(&req) {
            Outcome::MethodNotAllowed(allowed) => assert_eq!(allowed, ["GET", "HEAD", "PUT"]),
            other => panic!("{other:?}"),
        }
        req.method = "PUT";
        assert_eq!(matched(&t, &req).route.name, "write");
    }

    #[test]
    fn config_errors_name_the_route() {
        let bad = |routes: serde_json::Value| {
            let config: Config =
                serde_json::from_value(serde_json::json!({"routes": routes})).unwrap();
            Table::build(config.routes).unwrap_err()
        };
        assert!(
            bad(serde_json::json!([{"name": "x", "match": {}, "upstream": "u"}]))
                .starts_with("route `x`")
        );
        assert!(bad(serde_json::json!([{"name": "x", "match": {"path": "/a", "path_prefix": "/a"}, "upstream": "u"}])).contains("exactly one"));
        assert!(
            bad(serde_json::json!([{"name": "x", "match": {"path_regex": "("}, "upstream": "u"}]))
                .contains("path_regex")
        );
        assert!(bad(serde_json::json!([{"name": "x", "match": {"path": "/a/{id}"}, "rewrite": "/{nope}", "upstream": "u"}])).contains("nope"));
        assert!(bad(serde_json::json!([{"name": "x", "match": {"path": "/a"}, "strip_prefix": true, "upstream": "u"}])).contains("strip_prefix"));
        assert!(bad(serde_json::json!([{"name": "x", "match": {"path_prefix": "/a", "host": "a.*.com"}, "upstream": "u"}])).contains("host"));
    }

    #[test]
    fn regex_literal_prefixes_are_safe() {
        assert_eq!(literal_prefix("^/old/(.*)$"), "/old/");
        assert_eq!(literal_prefix("^/re12/[0-9]+$"), "/re12/");
        assert_eq!(literal_prefix("^/ab?c"), "/a");
        assert_eq!(literal_prefix("^/a+"), "/a");
        assert_eq!(literal_prefix("^/a{2}"), "/");
        assert_eq!(literal_prefix("/anywhere"), "");
        assert_eq!(literal_prefix("^/x|^/y"), "");
        assert_eq!(literal_prefix("^/(x|y)"), "");
    }

    #[test]
    fn a_thousand_routes_build_and_match() {
        let mut routes = Vec::new();
        for i in 0..250 {
            routes.push(serde_json::json!({"name": format!("e{i}"), "match": {"path": format!("/exact/{i}")}, "upstream": "u"}));
            routes.push(serde_json::json!({"name": format!("t{i}"), "match": {"path": format!("/svc{i}/{{id}}/items/{{item}}")}, "upstream": "u"}));
            routes.push(serde_json::json!({"name": format!("p{i}"), "match": {"path_prefix": format!("/prefix{i}")}, "upstream": "u"}));
            routes.push(serde_json::json!({"name": format!("r{i}"), "match": {"path_regex": format!("^/re{i}/[0-9]+$")}, "upstream": "u"}));
        }
        let t = table(serde_json::json!({"routes": routes}));
        assert_eq!(t.routes.len(), 1000);
        assert_eq!(matched(&t, &get("/svc125/7/items/9")).route.name, "t125");
        assert_eq!(matched(&t, &get("/prefix249/deep/path")).route.name, "p249");
        assert_eq!(matched(&t, &get("/re200/42")).route.name, "r200");
    }
}
