//! The one HTTP client both token validators use: bounded in time and in response size,
//! no redirects, rustls only.

use std::cell::Cell;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError};

/// Why a call to the authorization server produced no usable answer. Every variant means
/// "deny": the hosts never let a client in on an upstream failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, DNS failure, TLS handshake or certificate failure.
    #[error("cannot reach the authorization server: {0}")]
    Connect(String),
    /// No complete answer within `oauth_http_timeout_ms`.
    #[error("the authorization server did not answer within {0:?}")]
    Timeout(Duration),
    /// A status other than 200 (redirects are not followed).
    #[error("the authorization server answered HTTP {0}")]
    Status(u16),
    /// The answer is not `application/json`.
    #[error("the authorization server answered with content type {0:?}, expected application/json")]
    ContentType(String),
    /// The answer exceeds the size cap.
    #[error("the authorization server's answer exceeds {0} bytes")]
    TooLarge(usize),
    /// The answer is not a JSON object, or lacks a field that must be there.
    #[error("the authorization server's answer is malformed: {0}")]
    Malformed(String),
    /// Any other transport failure.
    #[error("request to the authorization server failed: {0}")]
    Transport(String),
    /// Local JWT verification has no keys yet (the JWKS could not be fetched).
    #[error("no verification keys available: {0}")]
    KeysUnavailable(String),
}

thread_local! {
    /// A limit shorter than `oauth_http_timeout_ms` for this thread's calls, while
    /// [`with_wait_limit`] runs: a host thread that shares one waiting budget among several
    /// validations gives each what is left of it.
    static WAIT_LIMIT: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Runs `body` with every call to the authorization server made by this thread bounded by
/// `limit` (or the configured timeout, when shorter).
pub(crate) fn with_wait_limit<T>(limit: Duration, body: impl FnOnce() -> T) -> T {
    struct Restore(Option<Duration>);
    impl Drop for Restore {
        fn drop(&mut self) {
            WAIT_LIMIT.with(|cell| cell.set(self.0));
        }
    }
    let _restore = Restore(WAIT_LIMIT.with(|cell| cell.replace(Some(limit))));
    body()
}

/// JSON object returned by the authorization server.
pub(crate) type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Blocking client with the configured timeout and trust roots. Clones share one connection
/// pool.
///
/// The reqwest client behind it is built when a request needs it and dropped by
/// [`release_if_idle`](Self::release_if_idle) after a quiet spell: it keeps a
/// runtime thread alive, and a broker whose only thread is its own handles each message more
/// cheaply (see `ARCHITECTURE.md`). Tokens are mostly answered from the cache, so the
/// authorization server is asked in bursts (logins, revalidation rounds), not steadily.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    shared: Arc<Connections>,
    timeout: Duration,
    /// The CA option as the host spells it, for set-up errors.
    ca_file_option: String,
}

#[derive(Debug)]
struct Connections {
    trust_only: Option<Vec<reqwest::Certificate>>,
    live: Mutex<Option<LiveClient>>,
}

#[derive(Debug)]
struct LiveClient {
    client: reqwest::blocking::Client,
    last_used: Instant,
}

impl HttpClient {
    pub(crate) fn new(config: &Config) -> Result<Self, ConfigError> {
        let trust_only = match &config.ca_file {
            None => None,
            Some(path) => {
                let key = &config.spelling.of("ca_file");
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::invalid(key, format!("cannot read {}: {e}", path.display()))
                })?;
                let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    ConfigError::invalid(
                        key,
                        format!("{} holds no usable PEM certificate: {e}", path.display()),
                    )
                })?;
                if certificates.is_empty() {
                    return Err(ConfigError::invalid(
                        key,
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                Some(certificates)
            }
        };
        Ok(Self {
            shared: Arc::new(Connections { trust_only, live: Mutex::new(None) }),
            timeout: config.http_timeout,
            ca_file_option: config.spelling.of("ca_file"),
        })
    }

    /// Sets the reqwest client up now, so that one that cannot be set up stops the start
    /// rather than failing the first login.
    pub(crate) fn set_up(&self) -> Result<(), ConfigError> {
        let client = self.build().map_err(|e| {
            let cause = error_chain(&e);
            let problem = match self.shared.trust_only {
                Some(_) => format!("cannot set up the HTTPS client: {cause}"),
                // Seen in minimal containers: no CA bundle, so rustls has no root to trust.
                None => format!(
                    "cannot set up the HTTPS client with the system's trusted CA certificates \
                     ({cause}): install them (Debian: ca-certificates) or name a PEM bundle here"
                ),
            };
            ConfigError::invalid(&self.ca_file_option, problem)
        })?;
        *self.shared.live.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(LiveClient { client, last_used: Instant::now() });
        Ok(())
    }

    fn build(&self) -> reqwest::Result<reqwest::blocking::Client> {
        build_client(self.timeout, self.shared.trust_only.as_deref())
    }

    /// Drops the reqwest client (its runtime thread and pooled connections) when it has not
    /// been used for `quiet`; the next request builds a new one. True when it was dropped.
    pub(crate) fn release_if_idle(&self, quiet: Duration) -> bool {
        let released = {
            let mut live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
            live.take_if(|live| live.last_used.elapsed() >= quiet)
        };
        // Dropped outside the lock: dropping joins the runtime thread.
        released.is_some()
    }

    /// The reqwest client, built anew if it was released.
    fn client(&self) -> Result<reqwest::blocking::Client, UpstreamError> {
        let mut live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = live.as_mut() {
            live.last_used = Instant::now();
            return Ok(live.client.clone());
        }
        let client = self
            .build()
            .map_err(|e| UpstreamError::Transport(format!("cannot set up the HTTP client: {e}")))?;
        *live = Some(LiveClient { client: client.clone(), last_used: Instant::now() });
        Ok(client)
    }

    /// POSTs a form and returns the JSON object answered, within the time and size bounds.
    pub(crate) fn post_form(
        &self,
        url: &str,
        body: String,
        basic_auth: Option<(&str, &str)>,
        max_body: usize,
    ) -> Result<JsonObject, UpstreamError> {
        let mut request = self
            .client()?
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some((user, password)) = basic_auth {
            // RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
            request = request
                .basic_auth(form_encode(user.as_bytes()), Some(form_encode(password.as_bytes())));
        }
        self.send(request, max_body)
    }

    /// GETs a JSON object, within the time and size bounds.
    pub(crate) fn get_json(&self, url: &str, max_body: usize) -> Result<JsonObject, UpstreamError> {
        let request = self.client()?.get(url).header(reqwest::header::ACCEPT, "application/json");
        self.send(request, max_body)
    }

    fn send(
        &self,
        request: reqwest::blocking::RequestBuilder,
        max_body: usize,
    ) -> Result<JsonObject, UpstreamError> {
        let started = Instant::now();
        let timeout =
            WAIT_LIMIT.with(Cell::get).map_or(self.timeout, |limit| limit.min(self.timeout));
        let response = request.timeout(timeout).send().map_err(|e| classify(&e, timeout))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !is_json_content_type(&content_type) {
            return Err(UpstreamError::ContentType(content_type));
        }
        if response.content_length().is_some_and(|len| len > max_body as u64) {
            return Err(UpstreamError::TooLarge(max_body));
        }
        // reqwest bounds each read by the timeout but not the whole body, so a server dripping
        // one byte at a time is cut off here at the deadline.
        let mut body = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut response = response;
        loop {
            if started.elapsed() >= timeout {
                return Err(UpstreamError::Timeout(timeout));
            }
            let read = response.read(&mut chunk).map_err(|e| classify_io(&e, started, timeout))?;
            if read == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..read]);
            if body.len() > max_body {
                return Err(UpstreamError::TooLarge(max_body));
            }
        }
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(object)) => Ok(object),
            Ok(_) => Err(UpstreamError::Malformed("not a JSON object".into())),
            Err(e) => Err(UpstreamError::Malformed(format!("invalid JSON: {e}"))),
        }
    }
}

fn classify(error: &reqwest::Error, timeout: Duration) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout(timeout)
    } else if error.is_connect() {
        UpstreamError::Connect(error_chain(error))
    } else {
        UpstreamError::Transport(error_chain(error))
    }
}

fn classify_io(error: &std::io::Error, started: Instant, timeout: Duration) -> UpstreamError {
    let timed_out = started.elapsed() >= timeout
        || error.kind() == std::io::ErrorKind::TimedOut
        || error_chain(error).contains("timed out");
    if timed_out {
        UpstreamError::Timeout(timeout)
    } else {
        UpstreamError::Transport(error_chain(error))
    }
}

fn build_client(
    timeout: Duration,
    trust_only: Option<&[reqwest::Certificate]>,
) -> reqwest::Result<reqwest::blocking::Client> {
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mosquitto-oauth/", env!("CARGO_PKG_VERSION")))
        .https_only(false)
        .no_proxy();
    if let Some(certificates) = trust_only {
        builder = builder.tls_certs_only(certificates.to_vec());
    }
    builder.build()
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("application/jwk-set+json")
}

/// The error and its causes on one line: reqwest's top-level message alone ("error sending
/// request") does not say whether the certificate or the port was the problem.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `application/x-www-form-urlencoded` encoding of raw bytes.
pub(crate) fn form_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0x0f)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_unreserved_characters() {
        assert_eq!(form_encode(b"abc-._*XYZ09"), "abc-._*XYZ09");
        assert_eq!(form_encode(b"a b+c/d=e&f"), "a+b%2Bc%2Fd%3De%26f");
        assert_eq!(form_encode(&[0, 0xff]), "%00%FF");
    }

    #[test]
    fn json_content_types_are_recognised_with_parameters() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/jwk-set+json"));
        assert!(!is_json_content_type("text/html"));
        assert!(!is_json_content_type(""));
    }
}
