//! A real OAuth 2.0 authorization server for end-to-end tests: `tests/idp/server.mjs`, built on
//! the npm package `oidc-provider`, run with Node on a free loopback port.
//!
//! Devices get tokens with the client-credentials grant. Tokens are opaque unless the request
//! names a resource (`urn:mqtt:...` or an http(s) URL), which makes them RFC 9068 JWTs (RS256)
//! with that resource as `aud`. Any scope string is granted exactly as requested. The server also
//! has test-only endpoints under `/__test/` (request counters, artificial delay).
//!
//! Needs `node` on the `PATH` and `npm ci --prefix tests/idp` run once.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

use crate::{ProcessGuard, wait_for_line, workspace_root};

/// Client id of the resource server (the broker) that introspects tokens, authenticating with
/// HTTP Basic (`client_secret_basic`). It may introspect and revoke any client's tokens.
pub const BROKER_CLIENT_ID: &str = "mqtt-broker";
/// Secret of [`BROKER_CLIENT_ID`].
pub const BROKER_CLIENT_SECRET: &str = "broker-secret";
/// Client id of a second resource-server client that authenticates with form parameters
/// (`client_secret_post`) instead of HTTP Basic.
pub const BROKER_POST_CLIENT_ID: &str = "mqtt-broker-post";
/// Secret of [`BROKER_POST_CLIENT_ID`].
pub const BROKER_POST_CLIENT_SECRET: &str = "broker-secret-post";
/// The device clients known to the server; each one's secret is `<id>-secret`
/// (see [`client_secret`]) and they authenticate with HTTP Basic.
pub const DEVICE_CLIENTS: [&str; 4] = ["device-1", "device-2", "device-3", "wildcat"];
/// The device client whose tokens are bound to the certificate it presents (RFC 8705), see
/// [`TokenRequest::presenting`].
pub const BOUND_DEVICE: &str = "bound-device";
/// How the server receives the client's certificate: as nginx forwards it behind TLS
/// termination (`$ssl_client_escaped_cert`).
const CLIENT_CERTIFICATE_HEADER: &str = "x-ssl-client-cert";

/// How long to wait for the server's ready line (usually there within a second).
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Starts tried before giving up: CI runs have seen a server process that never became ready
/// (cause unknown; its state is printed when it happens), while a second one started at once.
const START_ATTEMPTS: usize = 3;
/// Deadline of every HTTP request the harness makes (long enough for delay tests).
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Prefix of the single line the server prints on stdout once it listens.
const READY_PREFIX: &str = "IDP_READY ";

/// The secret of a static client of the test server: the broker clients have their own
/// ([`BROKER_CLIENT_SECRET`], [`BROKER_POST_CLIENT_SECRET`]), every other client `<id>-secret`.
pub fn client_secret(client_id: &str) -> String {
    match client_id {
        BROKER_CLIENT_ID => BROKER_CLIENT_SECRET.to_owned(),
        BROKER_POST_CLIENT_ID => BROKER_POST_CLIENT_SECRET.to_owned(),
        other => format!("{other}-secret"),
    }
}

/// The format of an access token, for [`TokenRequest::format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFormat {
    /// A random string only the server can resolve (by introspection).
    Opaque,
    /// An RFC 9068 JWT (`typ: at+jwt`) signed RS256 with the server's key; needs a resource.
    Jwt,
}

impl TokenFormat {
    fn as_param(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }
}

/// A client-credentials token request. Build it with [`TokenRequest::new`] and the builder
/// methods, or as a struct literal with `..Default::default()`.
///
/// ```ignore
/// let token = idp.token(&TokenRequest::new("device-1", &["mqtt:read:#"]).ttl_secs(3));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenRequest<'a> {
    /// The client asking; its secret is [`client_secret`]`(client_id)`.
    pub client_id: &'a str,
    /// Scopes, granted exactly as requested (none: the token has no scope).
    pub scopes: &'a [&'a str],
    /// Resource indicator (`urn:mqtt:...` or an http(s) URL): the token's `aud`, and by default
    /// makes the token a JWT.
    pub resource: Option<&'a str>,
    /// Lifetime in seconds (server default: 3600).
    pub ttl_secs: Option<u64>,
    /// Subject of the token (server default: the client id).
    pub sub: Option<&'a str>,
    /// Forces the format: with a resource, [`TokenFormat::Opaque`] gives an opaque token that
    /// still has an audience. Without a resource only opaque is possible.
    pub format: Option<TokenFormat>,
    /// The PEM certificate the client presents, forwarded as a TLS-terminating proxy would:
    /// [`BOUND_DEVICE`]'s tokens are bound to it (RFC 8705 `cnf.x5t#S256`).
    pub certificate_pem: Option<&'a str>,
}

impl<'a> TokenRequest<'a> {
    /// A request by `client_id` for `scopes`, opaque, with the server's default lifetime and sub.
    pub fn new(client_id: &'a str, scopes: &'a [&'a str]) -> Self {
        Self { client_id, scopes, ..Self::default() }
    }

    /// Sets the resource indicator (the token's audience; makes it a JWT unless
    /// [`format`](Self::format) says otherwise).
    #[must_use]
    pub fn resource(mut self, resource: &'a str) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the token's lifetime in seconds.
    #[must_use]
    pub fn ttl_secs(mut self, seconds: u64) -> Self {
        self.ttl_secs = Some(seconds);
        self
    }

    /// Sets the token's subject (`sub`), which may contain any characters (`+`, `/`, `#`, ...).
    #[must_use]
    pub fn subject(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    /// Forces the token format.
    #[must_use]
    pub fn format(mut self, format: TokenFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Presents the client certificate `pem` (see [`Self::certificate_pem`]).
    #[must_use]
    pub fn presenting(mut self, pem: &'a str) -> Self {
        self.certificate_pem = Some(pem);
        self
    }

    fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !self.scopes.is_empty() {
            form.push(("scope", self.scopes.join(" ")));
        }
        if let Some(resource) = self.resource {
            form.push(("resource", resource.to_owned()));
        }
        if let Some(ttl) = self.ttl_secs {
            form.push(("ttl", ttl.to_string()));
        }
        if let Some(sub) = self.sub {
            form.push(("sub", sub.to_owned()));
        }
        if let Some(format) = self.format {
            form.push(("token_format", format.as_param().to_owned()));
        }
        form
    }
}

/// What the token endpoint answered, success or error, for tests of refused requests.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenResponse {
    /// HTTP status code.
    pub status: u16,
    /// The JSON body: `access_token`, `expires_in`, `scope`, ... or `error`, `error_description`.
    pub body: Value,
}

/// Request counters of the server, counted at the HTTP level since start or the last
/// [`Idp::reset_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdpStats {
    /// Requests to the introspection endpoint.
    pub introspections: u64,
    /// Requests to the token endpoint.
    pub tokens: u64,
    /// Requests to the JWKS endpoint.
    pub jwks: u64,
}

/// A running test authorization server, killed when dropped.
#[derive(Debug)]
pub struct Idp {
    guard: ProcessGuard,
    issuer: String,
    port: u16,
    http: Client,
}

impl Idp {
    /// Starts the server on an OS-chosen loopback port and waits until it is ready.
    ///
    /// Panics if Node or the npm packages are missing or the server does not become ready.
    pub fn start() -> Idp {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra arguments for `server.mjs`, e.g.
    /// `["--introspection-delay-ms", "200"]` or `["--keys", "jwks.json"]`.
    pub fn start_with(args: &[&str]) -> Idp {
        let dir = server_dir();
        assert!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "oidc-provider is not installed in {}: run `npm ci --prefix tests/idp`",
            dir.display()
        );
        let mut command = Command::new("node");
        command
            .current_dir(&dir)
            .arg(dir.join("server.mjs"))
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut failures = Vec::new();
        let (guard, line) = loop {
            let mut guard = ProcessGuard::spawn("idp (node tests/idp/server.mjs)", &mut command);
            let stdout = guard.take_stdout().expect("idp stdout is piped");
            match wait_for_line(stdout, START_TIMEOUT, |line| line.starts_with(READY_PREFIX)) {
                Ok(line) => break (guard, line),
                Err(why) => {
                    // /proc/PID/stat: state (R, S, D, T = stopped, ...) and more, for the record.
                    let stat = std::fs::read_to_string(format!("/proc/{}/stat", guard.pid()))
                        .unwrap_or_default();
                    let failure = format!("idp pid {}: {why}; /proc stat: {stat}", guard.pid());
                    eprintln!("{failure}");
                    failures.push(failure);
                    assert!(failures.len() < START_ATTEMPTS, "idp did not start: {failures:#?}");
                }
            }
        };
        let ready: Value = serde_json::from_str(&line[READY_PREFIX.len()..])
            .unwrap_or_else(|e| panic!("bad idp ready line {line:?}: {e}"));
        let issuer = ready["issuer"].as_str().expect("ready line has an issuer").to_owned();
        let port = ready["port"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .expect("ready line has a port");
        let http = Client::builder().timeout(HTTP_TIMEOUT).build().expect("reqwest client builds");
        Idp { guard, issuer, port, http }
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (the `iss` of its tokens).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (for SIGSTOP/SIGCONT in fault tests).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer)
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_url(&self) -> String {
        format!("{}/token/introspection", self.issuer)
    }

    /// The JWKS endpoint (public RSA and EC P-256 keys).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(&self) -> String {
        format!("{}/token/revocation", self.issuer)
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// An opaque token for `client_id` with exactly `scopes`, lifetime 3600 s, sub = client id.
    pub fn opaque_token(&self, client_id: &str, scopes: &[&str]) -> String {
        self.token(&TokenRequest::new(client_id, scopes))
    }

    /// A JWT access token for `client_id` with exactly `scopes` and `aud` = `audience` (a
    /// resource indicator: `urn:mqtt:...` or an http(s) URL).
    pub fn jwt_token(&self, client_id: &str, scopes: &[&str], audience: &str) -> String {
        self.token(&TokenRequest::new(client_id, scopes).resource(audience))
    }

    /// The access token for `request`; panics if the server refuses it.
    pub fn token(&self, request: &TokenRequest<'_>) -> String {
        let response = self.token_response(request);
        assert_eq!(response.status, 200, "token request {request:?} refused: {}", response.body);
        response.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token response without access_token: {}", response.body))
            .to_owned()
    }

    /// A JWT of exactly `claims`, signed RS256 with this server's key (its `kid`, `typ:
    /// at+jwt`): for tokens the token endpoint would never issue, e.g. claiming another
    /// server's `iss`.
    pub fn sign(&self, claims: &Value) -> String {
        let response = self
            .http
            .post(format!("{}/__test/sign", self.issuer))
            .header("content-type", "application/json")
            .body(claims.to_string())
            .send()
            .expect("sign request sent");
        assert_eq!(response.status().as_u16(), 200, "sign request refused");
        let body: Value = response.json().expect("sign response is JSON");
        body["token"].as_str().expect("a signed token").to_owned()
    }

    /// The token endpoint's full answer to `request`, success or error.
    pub fn token_response(&self, request: &TokenRequest<'_>) -> TokenResponse {
        let mut builder = self.http.post(self.token_url());
        if let Some(pem) = request.certificate_pem {
            builder = builder.header(CLIENT_CERTIFICATE_HEADER, percent_encode(pem));
        }
        let builder = authenticate(builder, request.client_id, request.form());
        let response = builder.send().expect("token request sent");
        let status = response.status().as_u16();
        let body = response.json().expect("token response is JSON");
        TokenResponse { status, body }
    }

    /// Revokes `token` as `client_id` (its owner, or a broker client); panics unless the server
    /// answers 200.
    pub fn revoke(&self, client_id: &str, token: &str) {
        let builder = self.http.post(self.revocation_url());
        let builder = authenticate(builder, client_id, vec![("token", token.to_owned())]);
        let response = builder.send().expect("revocation request sent");
        let status = response.status();
        let body = response.text().unwrap_or_default();
        assert_eq!(status.as_u16(), 200, "revocation by {client_id} refused: {body}");
    }

    /// Introspects an opaque `token` as the broker ([`BROKER_CLIENT_ID`], HTTP Basic).
    pub fn introspect(&self, token: &str) -> Value {
        self.introspect_as(BROKER_CLIENT_ID, token)
    }

    /// Introspects `token` as `client_id`, authenticating the way that client is registered
    /// (form parameters for [`BROKER_POST_CLIENT_ID`], HTTP Basic otherwise).
    pub fn introspect_as(&self, client_id: &str, token: &str) -> Value {
        let builder = self.http.post(self.introspection_url());
        let builder = authenticate(builder, client_id, vec![("token", token.to_owned())]);
        let response = builder.send().expect("introspection request sent");
        let status = response.status().as_u16();
        let body: Value = response.json().expect("introspection response is JSON");
        assert_eq!(status, 200, "introspection by {client_id} failed: {body}");
        body
    }

    /// The server's public JWKS (this counts as a JWKS request in [`stats`](Self::stats)).
    pub fn jwks(&self) -> Value {
        self.get_json(&self.jwks_url())
    }

    /// The discovery document.
    pub fn discovery(&self) -> Value {
        self.get_json(&self.discovery_url())
    }

    /// Request counters since start or the last [`reset_stats`](Self::reset_stats).
    pub fn stats(&self) -> IdpStats {
        let body = self.get_json(&format!("{}/__test/stats", self.issuer));
        let count = |name: &str| {
            body[name].as_u64().unwrap_or_else(|| panic!("stats without {name}: {body}"))
        };
        IdpStats {
            introspections: count("introspections"),
            tokens: count("tokens"),
            jwks: count("jwks"),
        }
    }

    /// Sets the counters back to zero.
    pub fn reset_stats(&self) {
        self.post_test_endpoint(&format!("{}/__test/reset", self.issuer));
    }

    /// Delays every later introspection and JWKS answer by `ms` milliseconds (0: no delay).
    pub fn set_delay(&self, ms: u64) {
        self.post_test_endpoint(&format!("{}/__test/delay?ms={ms}", self.issuer));
    }

    fn get_json(&self, url: &str) -> Value {
        let response = self.http.get(url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        assert_eq!(status, 200, "GET {url}: {body}");
        body
    }

    fn post_test_endpoint(&self, url: &str) {
        let response = self.http.post(url).send().unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status().as_u16();
        let body = response.text().unwrap_or_default();
        assert_eq!(status, 200, "POST {url}: {body}");
    }
}

/// Decodes the header of a JWT (its first segment) as JSON; panics if it is not one.
pub fn jwt_header(token: &str) -> Value {
    jwt_segment(token, 0)
}

/// Decodes the claims of a JWT (its second segment) as JSON, without checking the signature;
/// panics if it is not one.
pub fn jwt_claims(token: &str) -> Value {
    jwt_segment(token, 1)
}

fn jwt_segment(token: &str, index: usize) -> Value {
    let segment = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("not a JWT (no segment {index}): {token}"));
    let bytes = base64url_decode(segment)
        .unwrap_or_else(|| panic!("JWT segment {index} is not base64url: {segment}"));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("JWT segment {index} is not JSON: {e}"))
}

/// Unpadded base64url (RFC 4648 §5) decoding; `None` on any invalid input.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        Some(u32::from(value))
    }
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut bits = 0u32;
        for &byte in chunk {
            bits = (bits << 6) | sextet(byte)?;
        }
        bits <<= 6 * (4 - chunk.len() as u32);
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// `tests/idp` in the workspace.
fn server_dir() -> PathBuf {
    workspace_root().join("tests").join("idp")
}

/// Adds client authentication the way `client_id` is registered, and the form body.
/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn authenticate(
    builder: RequestBuilder,
    client_id: &str,
    mut form: Vec<(&'static str, String)>,
) -> RequestBuilder {
    let secret = client_secret(client_id);
    if client_id == BROKER_POST_CLIENT_ID {
        form.push(("client_id", client_id.to_owned()));
        form.push(("client_secret", secret));
        builder.form(&form)
    } else {
        builder.basic_auth(client_id, Some(secret)).form(&form)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_known_values() {
        assert_eq!(base64url_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64url_decode("Zg").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64url_decode("Zm8").as_deref(), Some(&b"fo"[..]));
        assert_eq!(base64url_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(base64url_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url_decode("Zm9vY"), None);
        assert_eq!(base64url_decode("Zm9v="), None);
    }

    #[test]
    fn secrets_follow_the_server_config() {
        assert_eq!(client_secret(BROKER_CLIENT_ID), BROKER_CLIENT_SECRET);
        assert_eq!(client_secret(BROKER_POST_CLIENT_ID), BROKER_POST_CLIENT_SECRET);
        assert_eq!(client_secret("wildcat"), "wildcat-secret");
    }
}
