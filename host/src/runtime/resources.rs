//! The `request` and `response` resources: plugins read and edit host-owned
//! HTTP data in place, one field at a time (or several headers at once),
//! held to the same header limits and path rule as a client's request.

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::Uri;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use wasmtime::component::Resource;

use super::bindings::weir::plugin::types::{
    self, Address, BodyError, ClientCertificate, EditError, TlsInfo,
};
use super::host::{HostState, within};
use crate::exchange::{HeldRequest, HeldResponse, RequestState, ResponseState, TlsFacts};
use crate::http::body::{BodyState, BufferError};
use crate::http::headers::{self as edit, Bounded, HeaderLimits};

type Res<T> = wasmtime::Result<T>;

impl types::Host for HostState {}

impl HostState {
    fn req(&self, r: &Resource<HeldRequest>) -> Res<&RequestState> {
        Ok(&**self.table.get(r)?)
    }
    fn req_mut(&mut self, r: &Resource<HeldRequest>) -> Res<&mut RequestState> {
        Ok(&mut **self.table.get_mut(r)?)
    }
    fn resp(&self, r: &Resource<HeldResponse>) -> Res<&ResponseState> {
        Ok(&**self.table.get(r)?)
    }
    fn resp_mut(&mut self, r: &Resource<HeldResponse>) -> Res<&mut ResponseState> {
        Ok(&mut **self.table.get_mut(r)?)
    }
}

/// Header reads and edits shared by requests and responses.
mod headers {
    use super::*;

    fn text(value: &HeaderValue) -> String {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }

    pub fn first(map: &HeaderMap, name: &str) -> Option<String> {
        map.get(name).map(text)
    }

    pub fn all(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name).iter().map(text).collect()
    }

    pub fn list(map: &HeaderMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(n, v)| (n.as_str().to_string(), text(v)))
            .collect()
    }

    /// The contract's error for a refused edit.
    pub fn error(e: edit::EditError) -> EditError {
        match e {
            edit::EditError::InvalidName => EditError::InvalidHeaderName,
            edit::EditError::InvalidValue => EditError::InvalidHeaderValue,
            edit::EditError::LimitExceeded => EditError::LimitExceeded,
        }
    }

    pub fn set(
        map: &mut HeaderMap,
        limits: HeaderLimits,
        name: &str,
        value: &str,
    ) -> Result<(), EditError> {
        Bounded::new(map, limits).set(name, value).map_err(error)
    }

    pub fn append(
        map: &mut HeaderMap,
        limits: HeaderLimits,
        name: &str,
        value: &str,
    ) -> Result<(), EditError> {
        Bounded::new(map, limits).append(name, value).map_err(error)
    }

    pub fn set_all(
        map: &mut HeaderMap,
        limits: HeaderLimits,
        headers: &[(String, String)],
    ) -> Result<(), EditError> {
        Bounded::new(map, limits).set_all(headers).map_err(error)
    }

    pub fn remove(map: &mut HeaderMap, limits: HeaderLimits, name: &str) {
        Bounded::new(map, limits).remove(name);
    }

    /// After a body is replaced, its framing headers must describe it.
    pub fn frame_body(map: &mut HeaderMap, len: usize) {
        map.remove(TRANSFER_ENCODING);
        // Replacing a value can neither add a name nor pass the count limit
        // in any way that matters; `try_insert` keeps this panic-free anyway.
        let _ = map.try_insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
}

fn body_error(e: BufferError) -> BodyError {
    match e {
        BufferError::TooLarge(limit) => BodyError::TooLarge(limit),
        BufferError::ReadFailed(why) => BodyError::ReadFailed(why),
    }
}

async fn read_body(body: &mut BodyState, limit: u64) -> Result<Vec<u8>, BodyError> {
    body.buffer(limit)
        .await
        .map(|b| b.to_vec())
        .map_err(body_error)
}

impl types::HostRequest for HostState {
    fn method(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        Ok(self.req(&r)?.head.method.as_str().to_string())
    }

    fn set_method(
        &mut self,
        r: Resource<HeldRequest>,
        method: String,
    ) -> Res<Result<(), EditError>> {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Ok(Err(EditError::InvalidMethod));
        };
        self.req_mut(&r)?.head.method = method;
        Ok(Ok(()))
    }

    fn path_with_query(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        Ok(self.req(&r)?.path_with_query().to_string())
    }

    fn set_path_with_query(
        &mut self,
        r: Resource<HeldRequest>,
        pq: String,
    ) -> Res<Result<(), EditError>> {
        // The rule client paths follow: no dot segment or `//` reaches an
        // upstream, whoever wrote the path.
        let Ok(parsed) = crate::http::normalize::normalize_path_and_query(&pq) else {
            return Ok(Err(EditError::InvalidPath));
        };
        let req = self.req_mut(&r)?;
        let mut parts = req.head.uri.clone().into_parts();
        parts.path_and_query = Some(parsed);
        match Uri::from_parts(parts) {
            Ok(uri) => {
                req.head.uri = uri;
                Ok(Ok(()))
            }
            Err(_) => Ok(Err(EditError::InvalidPath)),
        }
    }

    fn authority(&mut self, r: Resource<HeldRequest>) -> Res<Option<String>> {
        Ok(self.req(&r)?.original_authority.clone())
    }

    fn client_addr(&mut self, r: Resource<HeldRequest>) -> Res<Address> {
        let client = self.req(&r)?.client;
        Ok(Address {
            ip: client.ip().to_string(),
            port: client.port(),
        })
    }

    fn client_ip(&mut self, r: Resource<HeldRequest>) -> Res<String> {
        Ok(self.req(&r)?.client_ip.to_string())
    }

    fn tls(&mut self, r: Resource<HeldRequest>) -> Res<Option<TlsInfo>> {
        Ok(self.req(&r)?.tls.as_deref().map(tls_info))
    }

    fn header(&mut self, r: Resource<HeldRequest>, name: String) -> Res<Option<String>> {
        Ok(headers::first(&self.req(&r)?.head.headers, &name))
    }

    fn header_all(&mut self, r: Resource<HeldRequest>, name: String) -> Res<Vec<String>> {
        Ok(headers::all(&self.req(&r)?.head.headers, &name))
    }

    fn headers(&mut self, r: Resource<HeldRequest>) -> Res<Vec<(String, String)>> {
        Ok(headers::list(&self.req(&r)?.head.headers))
    }

    fn set_header(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
        value: String,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.req_mut(&r)?.head.headers;
        Ok(headers::set(map, limits, &name, &value))
    }

    fn append_header(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
        value: String,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.req_mut(&r)?.head.headers;
        Ok(headers::append(map, limits, &name, &value))
    }

    fn set_headers(
        &mut self,
        r: Resource<HeldRequest>,
        list: Vec<(String, String)>,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.req_mut(&r)?.head.headers;
        Ok(headers::set_all(map, limits, &list))
    }

    fn remove_header(&mut self, r: Resource<HeldRequest>, name: String) -> Res<()> {
        let limits = self.caps.header_limits;
        headers::remove(&mut self.req_mut(&r)?.head.headers, limits, &name);
        Ok(())
    }

    fn set_response_headers(
        &mut self,
        r: Resource<HeldRequest>,
        list: Vec<(String, String)>,
    ) -> Res<Result<(), EditError>> {
        let kept = self.req_mut(&r)?.set_response_headers(&list);
        Ok(kept.map_err(headers::error))
    }

    async fn body(&mut self, r: Resource<HeldRequest>) -> Res<Result<Vec<u8>, BodyError>> {
        let (limit, deadline) = (self.caps.max_body_bytes, self.deadline);
        let req = self.req_mut(&r)?;
        within(deadline, read_body(&mut req.body, limit)).await
    }

    fn set_body(&mut self, r: Resource<HeldRequest>, body: Vec<u8>) -> Res<()> {
        let req = self.req_mut(&r)?;
        headers::frame_body(&mut req.head.headers, body.len());
        req.body.replace(body);
        Ok(())
    }

    fn get_context(&mut self, r: Resource<HeldRequest>, key: String) -> Res<Option<String>> {
        Ok(self.req(&r)?.context.get(&key).cloned())
    }

    fn set_context(&mut self, r: Resource<HeldRequest>, key: String, value: String) -> Res<()> {
        self.req_mut(&r)?.context.insert(key, value);
        Ok(())
    }

    fn upstream(&mut self, r: Resource<HeldRequest>) -> Res<Option<String>> {
        Ok(self.req(&r)?.upstream.clone())
    }

    fn set_upstream(
        &mut self,
        r: Resource<HeldRequest>,
        name: String,
    ) -> Res<Result<(), EditError>> {
        if !self.caps.outbound.knows(&name) {
            return Ok(Err(EditError::UnknownUpstream));
        }
        self.req_mut(&r)?.upstream = Some(name);
        Ok(Ok(()))
    }

    fn drop(&mut self, _r: Resource<HeldRequest>) -> Res<()> {
        // Requests are only ever lent to plugins; the host deletes them.
        Ok(())
    }
}

impl types::HostResponse for HostState {
    fn status(&mut self, r: Resource<HeldResponse>) -> Res<u16> {
        Ok(self.resp(&r)?.head.status.as_u16())
    }

    fn set_status(&mut self, r: Resource<HeldResponse>, status: u16) -> Res<Result<(), EditError>> {
        let Ok(status) = StatusCode::from_u16(status) else {
            return Ok(Err(EditError::InvalidStatus));
        };
        self.resp_mut(&r)?.head.status = status;
        Ok(Ok(()))
    }

    fn header(&mut self, r: Resource<HeldResponse>, name: String) -> Res<Option<String>> {
        Ok(headers::first(&self.resp(&r)?.head.headers, &name))
    }

    fn header_all(&mut self, r: Resource<HeldResponse>, name: String) -> Res<Vec<String>> {
        Ok(headers::all(&self.resp(&r)?.head.headers, &name))
    }

    fn headers(&mut self, r: Resource<HeldResponse>) -> Res<Vec<(String, String)>> {
        Ok(headers::list(&self.resp(&r)?.head.headers))
    }

    fn set_header(
        &mut self,
        r: Resource<HeldResponse>,
        name: String,
        value: String,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.resp_mut(&r)?.head.headers;
        Ok(headers::set(map, limits, &name, &value))
    }

    fn append_header(
        &mut self,
        r: Resource<HeldResponse>,
        name: String,
        value: String,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.resp_mut(&r)?.head.headers;
        Ok(headers::append(map, limits, &name, &value))
    }

    fn set_headers(
        &mut self,
        r: Resource<HeldResponse>,
        list: Vec<(String, String)>,
    ) -> Res<Result<(), EditError>> {
        let limits = self.caps.header_limits;
        let map = &mut self.resp_mut(&r)?.head.headers;
        Ok(headers::set_all(map, limits, &list))
    }

    fn remove_header(&mut self, r: Resource<HeldResponse>, name: String) -> Res<()> {
        let limits = self.caps.header_limits;
        headers::remove(&mut self.resp_mut(&r)?.head.headers, limits, &name);
        Ok(())
    }

    async fn body(&mut self, r: Resource<HeldResponse>) -> Res<Result<Vec<u8>, BodyError>> {
        let (limit, deadline) = (self.caps.max_body_bytes, self.deadline);
        let resp = self.resp_mut(&r)?;
        within(deadline, read_body(&mut resp.body, limit)).await
    }

    fn set_body(&mut self, r: Resource<HeldResponse>, body: Vec<u8>) -> Res<()> {
        let resp = self.resp_mut(&r)?;
        headers::frame_body(&mut resp.head.headers, body.len());
        resp.body.replace(body);
        Ok(())
    }

    fn drop(&mut self, _r: Resource<HeldResponse>) -> Res<()> {
        Ok(())
    }
}

fn tls_info(facts: &TlsFacts) -> TlsInfo {
    TlsInfo {
        version: facts.version.clone(),
        cipher_suite: facts.cipher_suite.clone(),
        sni: facts.sni.clone(),
        alpn: facts.alpn.clone(),
        client_certificate: facts
            .client_certificate
            .as_ref()
            .map(|c| ClientCertificate {
                subject: c.subject.clone(),
                sans: c.sans.clone(),
                fingerprint_sha256: c.fingerprint_sha256.clone(),
            }),
    }
}

/// Turn a plugin's reply into a response, or say what is wrong with it.
/// Its headers are held to the same limits as edits.
pub fn reply_to_response(
    reply: types::Reply,
    limits: HeaderLimits,
) -> Result<ResponseState, String> {
    let status = StatusCode::from_u16(reply.status)
        .map_err(|_| format!("status {} is not valid", reply.status))?;
    let mut response = http::Response::new(());
    *response.status_mut() = status;
    let map = response.headers_mut();
    let mut bounded = Bounded::new(map, limits);
    for (name, value) in &reply.headers {
        bounded.append(name, value).map_err(|e| match e {
            edit::EditError::InvalidName => format!("header name `{name}` is not valid"),
            edit::EditError::InvalidValue => format!("value of header `{name}` is not valid"),
            edit::EditError::LimitExceeded => format!(
                "its headers pass the limits ({} bytes, {} fields)",
                limits.max_bytes, limits.max_count
            ),
        })?;
    }
    headers::frame_body(map, reply.body.len());
    let (head, ()) = response.into_parts();
    Ok(ResponseState {
        head,
        body: BodyState::buffered(reply.body),
    })
}
