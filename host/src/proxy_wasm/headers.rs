//! Header maps as a filter sees them: the request's and response's headers
//! with the HTTP/2-style pseudo-headers the ABI defines (`:method`,
//! `:path`, `:authority`, `:scheme`; `:status`), and the headers of a
//! `proxy_http_call` answer. Edits go through the same checks and header
//! limits as a component plugin's, and `:path` edits are normalized as a
//! client's path is.

use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::abi::{Status, map};
use super::state::StreamState;
use crate::http::headers::{Bounded, HeaderLimits};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Every pair of map `kind`, pseudo-headers first; `None` when that map is
/// not there now (response headers during the request, say).
pub fn pairs(ex: &StreamState, kind: u32) -> Option<Pairs> {
    let mut out = Vec::new();
    match kind {
        map::HTTP_REQUEST_HEADERS => {
            let req = ex.req.as_ref()?;
            let authority = req
                .original_authority
                .clone()
                .or_else(|| req.head.uri.authority().map(|a| a.to_string()))
                .unwrap_or_default();
            let scheme = if req.tls.is_some() { "https" } else { "http" };
            out.push((
                b":method".to_vec(),
                req.head.method.as_str().as_bytes().to_vec(),
            ));
            out.push((b":path".to_vec(), req.path_with_query().as_bytes().to_vec()));
            out.push((b":authority".to_vec(), authority.into_bytes()));
            out.push((b":scheme".to_vec(), scheme.as_bytes().to_vec()));
            push_all(&mut out, &req.head.headers);
        }
        map::HTTP_RESPONSE_HEADERS => {
            let resp = ex.resp.as_ref()?;
            out.push((
                b":status".to_vec(),
                resp.head.status.as_str().as_bytes().to_vec(),
            ));
            push_all(&mut out, &resp.head.headers);
        }
        map::HTTP_CALL_RESPONSE_HEADERS => {
            let answer = ex.call_response.as_ref()?;
            out.push((b":status".to_vec(), answer.status.to_string().into_bytes()));
            for (name, value) in &answer.headers {
                out.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
            }
        }
        // Trailers are not given to filters (docs/plugins.md): an empty map.
        map::HTTP_REQUEST_TRAILERS
        | map::HTTP_RESPONSE_TRAILERS
        | map::HTTP_CALL_RESPONSE_TRAILERS => {}
        _ => return None,
    }
    Some(out)
}

fn push_all(out: &mut Pairs, headers: &HeaderMap) {
    for (name, value) in headers {
        out.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
}

/// The value of `key` in map `kind` (several values joined with `,`, as
/// Envoy answers).
pub fn get(ex: &StreamState, kind: u32, key: &str) -> Result<Vec<u8>, Status> {
    let key = key.to_ascii_lowercase();
    let all = pairs(ex, kind).ok_or(Status::NotFound)?;
    let values: Vec<&[u8]> = all
        .iter()
        .filter(|(name, _)| *name == key.as_bytes())
        .map(|(_, value)| value.as_slice())
        .collect();
    if values.is_empty() {
        return Err(Status::NotFound);
    }
    Ok(values.join(&b","[..]))
}

/// An edit of a header map.
pub enum Edit<'a> {
    /// Add a value, keeping the others.
    Add(&'a str, &'a str),
    /// Replace every value.
    Replace(&'a str, &'a str),
    /// Remove every value.
    Remove(&'a str),
}

/// Apply `edit` to map `kind`.
pub fn edit(ex: &mut StreamState, kind: u32, edit: Edit<'_>, limits: HeaderLimits) -> Status {
    let (name, value) = match edit {
        Edit::Add(name, value) | Edit::Replace(name, value) => (name, Some(value)),
        Edit::Remove(name) => (name, None),
    };
    if name.starts_with(':') {
        return pseudo(ex, kind, name, value);
    }
    let headers = match kind {
        map::HTTP_REQUEST_HEADERS => ex.req.as_mut().map(|r| &mut r.head.headers),
        map::HTTP_RESPONSE_HEADERS => ex.resp.as_mut().map(|r| &mut r.head.headers),
        _ => return Status::BadArgument,
    };
    let Some(headers) = headers else {
        return Status::NotFound;
    };
    let mut bounded = Bounded::new(headers, limits);
    let outcome = match edit {
        Edit::Add(name, value) => bounded.append(name, value),
        Edit::Replace(name, value) => bounded.set(name, value),
        Edit::Remove(name) => {
            bounded.remove(name);
            Ok(())
        }
    };
    match outcome {
        Ok(()) => Status::Ok,
        Err(_) => Status::BadArgument,
    }
}

/// Replace the whole of map `kind` with `pairs` (pseudo-headers among them
/// set what they name).
pub fn set_all(ex: &mut StreamState, kind: u32, pairs: Pairs, limits: HeaderLimits) -> Status {
    let mut fresh = HeaderMap::new();
    let mut pseudos = Vec::new();
    {
        let mut bounded = Bounded::new(&mut fresh, limits);
        for (name, value) in &pairs {
            let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            else {
                return Status::BadArgument;
            };
            if name.starts_with(':') {
                pseudos.push((name.to_string(), value.to_string()));
            } else if bounded.append(name, value).is_err() {
                return Status::BadArgument;
            }
        }
    }
    let headers = match kind {
        map::HTTP_REQUEST_HEADERS => ex.req.as_mut().map(|r| &mut r.head.headers),
        map::HTTP_RESPONSE_HEADERS => ex.resp.as_mut().map(|r| &mut r.head.headers),
        _ => return Status::BadArgument,
    };
    let Some(headers) = headers else {
        return Status::NotFound;
    };
    *headers = fresh;
    for (name, value) in pseudos {
        let status = pseudo(ex, kind, &name, Some(&value));
        if status != Status::Ok {
            return status;
        }
    }
    Status::Ok
}

/// Set (or, for `None`, ignore the removal of) a pseudo-header.
fn pseudo(ex: &mut StreamState, kind: u32, name: &str, value: Option<&str>) -> Status {
    let Some(value) = value else {
        // Pseudo-headers cannot be removed; Envoy ignores it too.
        return Status::Ok;
    };
    match (kind, name) {
        (map::HTTP_REQUEST_HEADERS, ":path") => {
            let Some(req) = ex.req.as_mut() else {
                return Status::NotFound;
            };
            // The rule client paths follow: no dot segment or `//` reaches
            // an upstream, whoever wrote the path.
            let Ok(parsed) = crate::http::normalize::normalize_path_and_query(value) else {
                return Status::BadArgument;
            };
            let mut parts = req.head.uri.clone().into_parts();
            parts.path_and_query = Some(parsed);
            match http::Uri::from_parts(parts) {
                Ok(uri) => {
                    req.head.uri = uri;
                    Status::Ok
                }
                Err(_) => Status::BadArgument,
            }
        }
        (map::HTTP_REQUEST_HEADERS, ":method") => {
            match (ex.req.as_mut(), Method::from_bytes(value.as_bytes())) {
                (Some(req), Ok(method)) => {
                    req.head.method = method;
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                (_, Err(_)) => Status::BadArgument,
            }
        }
        (map::HTTP_REQUEST_HEADERS, ":authority") => {
            match (ex.req.as_mut(), HeaderValue::from_str(value)) {
                (Some(req), Ok(host)) => {
                    req.head.headers.insert(http::header::HOST, host);
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                (_, Err(_)) => Status::BadArgument,
            }
        }
        // The scheme is the listener's; setting it changes nothing.
        (map::HTTP_REQUEST_HEADERS, ":scheme") => Status::Ok,
        (map::HTTP_RESPONSE_HEADERS, ":status") => {
            match (
                ex.resp.as_mut(),
                value
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok()),
            ) {
                (Some(resp), Some(status)) => {
                    resp.head.status = status;
                    Status::Ok
                }
                (None, _) => Status::NotFound,
                (_, None) => Status::BadArgument,
            }
        }
        _ => Status::BadArgument,
    }
}
