//! The web dashboard on the admin listener:
//!
//! - `GET /`: a redirect to `/ui`;
//! - `GET /ui`: one page (`index.html`, `app.js`, `style.css`, embedded in
//!   the binary) that polls `/admin/plugins`, `/admin/upstreams` and
//!   `/metrics` every second and can `POST /admin/reload`;
//! - `POST /ui/login`: the token from the login form (`login.html`).
//!
//! A browser cannot send `Authorization: Bearer` when it navigates, so with
//! `[admin] token` the page answers 401 with a login form. The right token
//! sets the `weir_admin` cookie, an HMAC of the token (so the token itself
//! never sits in the browser), which [`super::Admin`] accepts like the
//! bearer header. The cookie is sent by the browser on its own, so a
//! mutating request authorized only by it must also carry `x-weir-csrf: 1`:
//! the dashboard's `fetch` sets that header, a form on another site cannot.

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::error::json_response;
use crate::http::body::{Body, full};

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");
const LOGIN: &str = include_str!("login.html");

/// The session cookie's name.
const COOKIE: &str = "weir_admin";
/// The header a cookie-authorized mutating request must carry.
const CSRF_HEADER: &str = "x-weir-csrf";
/// What the session cookie is an HMAC of, keyed by the token: the cookie
/// changes when the token does, and reveals nothing about it.
const SESSION_CONTEXT: &[u8] = b"weir-admin-session";
/// `token=` and any sensible token, percent-encoded; more is not a login.
const MAX_LOGIN_BODY: usize = 8 * 1024;
/// Only this origin's scripts, styles and requests; no framing, so the
/// Reload button cannot be clickjacked.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Whether a request to the admin listener may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// Neither the bearer token nor a valid session cookie.
    Unauthorized,
    /// A mutating request with the session cookie but without
    /// `x-weir-csrf: 1`: possibly forged by another site.
    MissingCsrf,
}

/// Whether `path` is the dashboard's (`/`, `/ui` and below).
pub fn serves(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Answer a dashboard request; `access` is what the admin API decided from
/// the request's credentials.
pub async fn handle(
    request: Request<Incoming>,
    token: Option<&str>,
    access: Access,
) -> Response<Body> {
    let granted = access == Access::Granted;
    let path = request.uri().path().to_string();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") => redirect(StatusCode::FOUND, "/ui"),
        (Method::GET, "/ui" | "/ui/") if granted => page(StatusCode::OK, INDEX),
        (Method::GET, "/ui" | "/ui/") => login_page(None),
        // The login page needs the style sheet; it holds nothing secret.
        (Method::GET, "/ui/style.css") => asset(STYLE, "text/css; charset=utf-8"),
        (Method::GET, "/ui/app.js") => {
            refusal(access).unwrap_or_else(|| asset(APP, "text/javascript; charset=utf-8"))
        }
        (Method::POST, "/ui/login") => login(request, token).await,
        (_, "/" | "/ui" | "/ui/" | "/ui/style.css" | "/ui/app.js" | "/ui/login") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method not allowed"}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
}

/// The answer to a request `access` refuses, if it does.
pub fn refusal(access: Access) -> Option<Response<Body>> {
    match access {
        Access::Granted => None,
        Access::Unauthorized => {
            let mut response =
                json_response(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"}));
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="weir-admin""#),
            );
            Some(response)
        }
        Access::MissingCsrf => Some(json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "a request authorized by the dashboard's cookie needs `x-weir-csrf: 1`"}),
        )),
    }
}

/// Access from the session cookie, for a request without the bearer token.
pub fn by_cookie(token: &str, method: &Method, headers: &HeaderMap) -> Access {
    if !has_session(headers, token) {
        return Access::Unauthorized;
    }
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if safe || csrf_header(headers) {
        Access::Granted
    } else {
        Access::MissingCsrf
    }
}

/// The session cookie's value for `token`: hex HMAC-SHA256.
fn session(token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    hex::encode(ring::hmac::sign(&key, SESSION_CONTEXT).as_ref())
}

/// Whether any `Cookie` header holds the session cookie of `token`.
fn has_session(headers: &HeaderMap, token: &str) -> bool {
    let expected = session(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .any(|(_, value)| super::same_secret(value.trim().as_bytes(), expected.as_bytes()))
}

/// Whether the request says it comes from the dashboard's own script.
/// Another site can only send it through CORS, which this listener never
/// allows.
fn csrf_header(headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|value| value.as_bytes() == b"1")
}

/// `POST /ui/login`: the right token sets the session cookie and goes to
/// the dashboard; a wrong one shows the form again.
async fn login(request: Request<Incoming>, token: Option<&str>) -> Response<Body> {
    let Some(token) = token else {
        // Nothing to log into: the dashboard is open.
        return redirect(StatusCode::SEE_OTHER, "/ui");
    };
    let form = match Limited::new(request.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return login_page(Some("The form could not be read.")),
    };
    let presented = form_token(&String::from_utf8_lossy(&form));
    if !super::same_secret(presented.as_bytes(), token.as_bytes()) {
        tracing::warn!("admin dashboard login with a wrong token");
        return login_page(Some("Wrong token."));
    }
    let mut response = redirect(StatusCode::SEE_OTHER, "/ui");
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        session(token)
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The `token` field of a form-urlencoded body.
fn form_token(form: &str) -> String {
    super::query_param(Some(form.trim()), "token").unwrap_or_default()
}

/// The login form, 401, with `message` (fixed text, never user input).
fn login_page(message: Option<&str>) -> Response<Body> {
    let text = LOGIN.replace("{{message}}", message.unwrap_or(""));
    let mut response = page(StatusCode::UNAUTHORIZED, &text);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="weir-admin""#),
    );
    response
}

/// An HTML page with the dashboard's security headers.
fn page(status: StatusCode, html: &str) -> Response<Body> {
    let mut response = asset(html, "text/html; charset=utf-8");
    *response.status_mut() = status;
    response
}

fn asset(text: &str, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text.to_string()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Embedded in the binary: a new binary may bring a new page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn redirect(status: StatusCode, to: &'static str) -> Response<Body> {
    let mut response = Response::new(crate::http::body::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_session_is_an_hmac_of_the_token_not_the_token() {
        let value = session("s3cret");
        assert_eq!(value.len(), 64);
        assert!(!value.contains("s3cret"));
        assert_eq!(value, session("s3cret"));
        assert_ne!(value, session("other"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let good = format!("{COOKIE}={}", session("t"));
        assert!(has_session(&cookies(&[&good]), "t"));
        assert!(has_session(&cookies(&[&format!("a=1; {good}; b=2")]), "t"));
        assert!(has_session(&cookies(&["a=1", &good]), "t"));
        assert!(!has_session(&cookies(&[&good]), "other-token"));
        assert!(!has_session(&cookies(&["weir_admin=t"]), "t"));
        assert!(!has_session(
            &cookies(&["x_weir_admin=1", "weir_admin"]),
            "t"
        ));
        assert!(!has_session(&HeaderMap::new(), "t"));
    }

    #[test]
    fn a_cookie_alone_reads_but_needs_the_csrf_header_to_change() {
        let mut headers = cookies(&[&format!("{COOKIE}={}", session("t"))]);
        assert_eq!(by_cookie("t", &Method::GET, &headers), Access::Granted);
        assert_eq!(by_cookie("t", &Method::HEAD, &headers), Access::Granted);
        assert_eq!(by_cookie("t", &Method::POST, &headers), Access::MissingCsrf);
        headers.insert(CSRF_HEADER, HeaderValue::from_static("yes"));
        assert_eq!(
            by_cookie("t", &Method::DELETE, &headers),
            Access::MissingCsrf
        );
        headers.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert_eq!(by_cookie("t", &Method::POST, &headers), Access::Granted);
        let forged = cookies(&["weir_admin=00"]);
        assert_eq!(by_cookie("t", &Method::GET, &forged), Access::Unauthorized);
    }

    #[test]
    fn the_login_form_is_decoded() {
        assert_eq!(form_token("token=a%2Bb+c"), "a+b c");
        assert_eq!(form_token("x=1&token=abc\r\n"), "abc");
        assert_eq!(form_token("nothing=here"), "");
    }

    #[test]
    fn the_paths_are_the_dashboards() {
        assert!(serves("/") && serves("/ui") && serves("/ui/app.js"));
        assert!(!serves("/uix") && !serves("/admin/plugins") && !serves("/metrics"));
    }

    #[test]
    fn the_assets_are_small_and_self_contained() {
        let total = INDEX.len() + APP.len() + STYLE.len() + LOGIN.len();
        assert!(total < 25 * 1024, "the dashboard is {total} bytes");
        for text in [INDEX, APP, STYLE, LOGIN] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
        assert!(INDEX.contains(r#"id="total-requests""#));
        assert!(LOGIN.contains(r#"action="/ui/login""#) && LOGIN.contains("{{message}}"));
    }
}
