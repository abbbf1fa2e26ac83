//! The properties a filter reads with `proxy_get_property`, named as Envoy
//! names its attributes, and encoded as Envoy encodes them: strings as
//! bytes, integers as 8-byte little-endian, booleans as one byte. A
//! property Weir does not have answers `NotFound`, as Envoy's do; the list
//! is in docs/plugins.md.
//!
//! `proxy_set_property` writes the request's context (the one component
//! plugins read with `get-context`), under the path joined with `.`; reads
//! fall back to it, so filters and component plugins pass facts both ways.

use super::state::StreamState;

/// Properties a filter may not overwrite (they describe the request).
const READ_ONLY: &[&str] = &[
    "request",
    "response",
    "source",
    "destination",
    "connection",
    "plugin_name",
];

/// The value of the property at `path` (its segments), if Weir has it.
pub fn get(ex: &StreamState, plugin: &str, path: &[String]) -> Option<Vec<u8>> {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(value) = known(ex, plugin, &segments) {
        return Some(value);
    }
    let req = ex.req.as_ref()?;
    req.context
        .get(&path.join("."))
        .map(|v| v.as_bytes().to_vec())
}

/// Store `value` at `path` in the request's context; `false` for a
/// read-only path or when there is no request.
pub fn set(ex: &mut StreamState, path: &[String], value: &[u8]) -> bool {
    let Some(first) = path.first() else {
        return false;
    };
    if READ_ONLY.contains(&first.as_str()) {
        return false;
    }
    let (Some(req), Ok(value)) = (ex.req.as_mut(), std::str::from_utf8(value)) else {
        return false;
    };
    req.context.insert(path.join("."), value.to_string());
    true
}

fn text(value: impl AsRef<str>) -> Vec<u8> {
    value.as_ref().as_bytes().to_vec()
}

fn int(value: i64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

fn known(ex: &StreamState, plugin: &str, path: &[&str]) -> Option<Vec<u8>> {
    let req = ex.req.as_ref();
    match path {
        ["plugin_name"] => Some(text(plugin)),
        ["plugin_root_id"] | ["plugin_vm_id"] => Some(Vec::new()),
        ["route_name"] | ["xds", "route_name"] => req?.context.get("route").map(text),
        ["cluster_name"] | ["xds", "cluster_name"] => req?.upstream.as_deref().map(text),
        ["request", "path"] => Some(text(req?.path_with_query())),
        ["request", "url_path"] => Some(text(req?.head.uri.path())),
        ["request", "query"] => Some(text(req?.head.uri.query().unwrap_or(""))),
        ["request", "method"] => Some(text(req?.head.method.as_str())),
        ["request", "scheme"] => Some(text(if req?.tls.is_some() { "https" } else { "http" })),
        ["request", "host"] => req?.original_authority.as_deref().map(text),
        ["request", "protocol"] => Some(text(format!("{:?}", req?.head.version))),
        ["request", "id"] => header(&req?.head.headers, "x-request-id"),
        ["request", "referer"] => header(&req?.head.headers, "referer"),
        ["request", "useragent"] => header(&req?.head.headers, "user-agent"),
        ["request", "headers", name] => header(&req?.head.headers, name),
        ["response", "code"] => Some(int(i64::from(ex.resp.as_ref()?.head.status.as_u16()))),
        ["response", "headers", name] => header(&ex.resp.as_ref()?.head.headers, name),
        ["source", "address"] => Some(text(req?.client.to_string())),
        ["source", "port"] => Some(int(i64::from(req?.client.port()))),
        ["connection", "mtls"] => Some(vec![u8::from(
            req?.tls
                .as_ref()
                .is_some_and(|t| t.client_certificate.is_some()),
        )]),
        ["connection", "tls_version"] => req?.tls.as_ref().map(|t| text(&t.version)),
        ["connection", "requested_server_name"] => {
            req?.tls.as_ref().and_then(|t| t.sni.as_deref()).map(text)
        }
        ["connection", "subject_peer_certificate"] => req?
            .tls
            .as_ref()
            .and_then(|t| t.client_certificate.as_ref())
            .map(|c| text(&c.subject)),
        ["connection", "sha256_peer_certificate_digest"] => req?
            .tls
            .as_ref()
            .and_then(|t| t.client_certificate.as_ref())
            .map(|c| text(&c.fingerprint_sha256)),
        _ => None,
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<Vec<u8>> {
    let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    (!values.is_empty()).then(|| values.join(&b","[..]))
}

/// A property path as the ABI sends it: segments separated by NUL.
pub fn split_path(bytes: &[u8]) -> Option<Vec<String>> {
    bytes
        .split(|&b| b == 0)
        .map(|segment| String::from_utf8(segment.to_vec()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::RequestState;
    use crate::http::body::BodyState;

    fn exchange() -> StreamState {
        let (head, ()) = http::Request::builder()
            .uri("/a/b?x=1")
            .header("host", "example.test")
            .header("x-request-id", "r1")
            .body(())
            .unwrap()
            .into_parts();
        let req = RequestState::new(
            head,
            BodyState::buffered(""),
            "192.0.2.7:4567".parse().unwrap(),
        );
        StreamState {
            req: Some(Box::new(req)),
            ..StreamState::default()
        }
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn envoy_attribute_names_and_encodings() {
        let ex = exchange();
        assert_eq!(
            get(&ex, "f", &path(&["request", "path"])),
            Some(b"/a/b?x=1".to_vec())
        );
        assert_eq!(
            get(&ex, "f", &path(&["request", "url_path"])),
            Some(b"/a/b".to_vec())
        );
        assert_eq!(
            get(&ex, "f", &path(&["request", "host"])),
            Some(b"example.test".to_vec())
        );
        assert_eq!(
            get(&ex, "f", &path(&["request", "id"])),
            Some(b"r1".to_vec())
        );
        assert_eq!(
            get(&ex, "f", &path(&["source", "address"])),
            Some(b"192.0.2.7:4567".to_vec())
        );
        // Integers are 8-byte little-endian, as Envoy encodes them.
        assert_eq!(
            get(&ex, "f", &path(&["source", "port"])),
            Some(4567i64.to_le_bytes().to_vec())
        );
        assert_eq!(get(&ex, "f", &path(&["connection", "mtls"])), Some(vec![0]));
        assert_eq!(get(&ex, "f", &path(&["plugin_name"])), Some(b"f".to_vec()));
        assert_eq!(get(&ex, "f", &path(&["node", "id"])), None);
    }

    #[test]
    fn set_properties_land_in_the_request_context() {
        let mut ex = exchange();
        assert!(set(&mut ex, &path(&["tenant"]), b"acme"));
        assert_eq!(
            ex.req
                .as_ref()
                .unwrap()
                .context
                .get("tenant")
                .map(String::as_str),
            Some("acme")
        );
        assert_eq!(get(&ex, "f", &path(&["tenant"])), Some(b"acme".to_vec()));
        assert!(!set(&mut ex, &path(&["request", "path"]), b"/x"));
    }

    #[test]
    fn paths_split_on_nul() {
        assert_eq!(
            split_path(b"request\0path"),
            Some(path(&["request", "path"]))
        );
    }
}
