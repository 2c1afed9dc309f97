//! Hot-path costs of the auth core:
//!
//! - `acl/session_16_grants`: one ACL decision for a client holding 16 grants (8 read, 8 write),
//!   both on bare [`SessionGrants`] and through a real [`Session`] from [`Authenticator::login`];
//! - `cache/hit`: [`Authenticator::validate`] of a token whose verdict is cached;
//! - `jwt/verify_rs256`: local RS256 verification with the cache disabled.
//!
//! The introspection endpoint is a tiny HTTP stub on a loopback port; the RSA key is made with
//! the `openssl` command at start-up. `cargo bench -p mqtt-oauth-core --bench acl -- --quick`
//! runs the lot in well under two minutes.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use oauth_core::{
    Access, AccessToken, Authenticator, Config, Grants, Session, SessionGrants, TokenSource,
    now_epoch,
};

const CLIENT_ID: &str = "dev-0042";

/// 8 write then 8 read grants, as an IoT deployment would hand a device. The topics below hit
/// the *last* filter of each list, so an allowed check scans the whole list, like a denial.
const WRITE_GRANTS: [&str; 8] = [
    "devices/%c/telemetry/#",
    "devices/%c/state",
    "devices/%c/events/+",
    "fleet/+/status",
    "site/12/+/state",
    "site/12/+/alarm/#",
    "logs/%c/#",
    "site/7/+/metrics/#",
];
const READ_GRANTS: [&str; 8] = [
    "devices/%c/commands/#",
    "devices/%c/config",
    "fleet/+/commands",
    "fleet/broadcast/#",
    "site/12/+/state",
    "site/7/+/setpoint",
    "ota/%c/firmware/+",
    "alerts/site/7/#",
];
const WRITE_ALLOWED: &str = "site/7/pump-3/metrics/flow/rate";
const WRITE_DENIED: &str = "site/8/pump-3/metrics/flow/rate";
const READ_ALLOWED: &str = "alerts/site/7/high-pressure";

fn scope_string() -> String {
    let write = WRITE_GRANTS.iter().map(|f| format!("mqtt:write:{f}"));
    let read = READ_GRANTS.iter().map(|f| format!("mqtt:read:{f}"));
    std::iter::once("openid profile".to_owned())
        .chain(write)
        .chain(read)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Introspection stub
// ---------------------------------------------------------------------------------------------

/// Serves every request on a loopback port with one fixed `200 application/json` body, closing
/// each connection after the answer. Runs until the process ends.
fn spawn_introspection_stub(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A broken client connection only fails that request.
            let _ = answer(stream, body.as_bytes());
        }
    });
    format!("http://{address}/introspect")
}

fn answer(mut stream: TcpStream, body: &[u8]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..n]);
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while request.len() < header_end + length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn introspecting_authenticator() -> Authenticator {
    let body = serde_json::json!({
        "active": true,
        "scope": scope_string(),
        "exp": now_epoch() + 3600,
        "sub": CLIENT_ID,
        "client_id": "fleet-app",
        "token_type": "Bearer",
    })
    .to_string();
    let url = spawn_introspection_stub(body);
    let config = Config::from_pairs([
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "mosquitto"),
        ("oauth_client_secret", "bench-secret"),
        ("oauth_http_timeout_ms", "5000"),
    ])
    .expect("valid introspection config");
    Authenticator::new(config).expect("authenticator")
}

// ---------------------------------------------------------------------------------------------
// RSA key, JWKS and a signed token
// ---------------------------------------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("oauth-core-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) -> String {
    let output = Command::new("openssl").args(args).output().expect("run the openssl command");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("openssl prints ASCII")
}

fn hex_to_bytes(hex: &str) -> Vec<u8> {
    let digit = |c: u8| char::from(c).to_digit(16).expect("hex digit") as u8;
    let hex = hex.as_bytes();
    let padded: Vec<u8> = if hex.len() % 2 == 1 { [b"0", hex].concat() } else { hex.to_vec() };
    padded.chunks(2).map(|pair| digit(pair[0]) << 4 | digit(pair[1])).collect()
}

/// Generates an RSA-2048 key, writes its public half as a JWKS, and returns (JWKS path, PEM).
fn rsa_key_and_jwks(dir: &Path) -> (PathBuf, Vec<u8>) {
    let key_path = dir.join("rsa.pem");
    let key = key_path.to_str().expect("UTF-8 temp path");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]);
    let modulus = openssl(&["rsa", "-in", key, "-noout", "-modulus"]);
    let hex = modulus.trim().strip_prefix("Modulus=").expect("openssl prints Modulus=<hex>");
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "kid": "bench-1", "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(hex_to_bytes(hex)), "e": "AQAB",
    }]});
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("write the JWKS");
    (jwks_path, std::fs::read(&key_path).expect("read the key"))
}

fn signed_token(pem: &[u8]) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("bench-1".into());
    header.typ = Some("at+jwt".into());
    let claims = serde_json::json!({
        "iss": "https://idp.example.com", "sub": CLIENT_ID, "client_id": "fleet-app",
        "exp": now_epoch() + 3600, "iat": now_epoch(), "scope": scope_string(),
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem).expect("RSA PEM");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// A JWT-shaped string of about 800 bytes (a header, a payload with a long scope, a 2048-bit
/// signature's worth of base64url); only the shape matters, it is introspected.
fn jwt_shaped_token() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"sub": CLIENT_ID, "exp": now_epoch() + 3600, "scope": scope_string()})
            .to_string()
            .get(..300)
            .expect("payload is long enough"),
    );
    let signature = URL_SAFE_NO_PAD.encode([0x5a; 256]);
    format!("{header}.{payload}.{signature}")
}

// ---------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------

fn session_grants() -> SessionGrants {
    let scopes = scope_string();
    Grants::from_scopes(scopes.split(' '), "mqtt:").resolve(CLIENT_ID, None)
}

fn login(auth: &Authenticator) -> Session {
    let token = AccessToken::new(&b"opaque-0123456789abcdef0123456789abcdef"[..]);
    let session = auth.login(&token, CLIENT_ID, None).expect("login through the stub");
    assert_eq!(session.source(), TokenSource::Introspection);
    session
}

fn acl_decisions(c: &mut Criterion, auth: &Authenticator) {
    let grants = session_grants();
    assert_eq!((grants.write_filters().len(), grants.read_filters().len()), (8, 8));
    let session = login(auth);
    let now = now_epoch();
    for (access, topic, expected) in [
        (Access::Write, WRITE_ALLOWED, true),
        (Access::Write, WRITE_DENIED, false),
        (Access::Read, READ_ALLOWED, true),
    ] {
        assert_eq!(grants.allows(access, topic), expected, "{access:?} {topic}");
        assert_eq!(session.allows(access, topic, now), expected, "{access:?} {topic}");
    }

    let mut group = c.benchmark_group("acl/session_16_grants");
    group.bench_function("grants_write_allowed", |b| {
        b.iter(|| black_box(&grants).allows(Access::Write, black_box(WRITE_ALLOWED)));
    });
    group.bench_function("grants_write_denied", |b| {
        b.iter(|| black_box(&grants).allows(Access::Write, black_box(WRITE_DENIED)));
    });
    group.bench_function("grants_read_allowed", |b| {
        b.iter(|| black_box(&grants).allows(Access::Read, black_box(READ_ALLOWED)));
    });
    group.bench_function("session_write_allowed", |b| {
        b.iter(|| black_box(&session).allows(Access::Write, black_box(WRITE_ALLOWED), now));
    });
    group.bench_function("session_write_denied", |b| {
        b.iter(|| black_box(&session).allows(Access::Write, black_box(WRITE_DENIED), now));
    });
    group.bench_function("session_read_allowed", |b| {
        b.iter(|| black_box(&session).allows(Access::Read, black_box(READ_ALLOWED), now));
    });
    group.finish();
}

fn cache_hits(c: &mut Criterion, auth: &Authenticator) {
    let opaque = AccessToken::new(&b"opaque-fedcba9876543210fedcba9876543210"[..]);
    let jwt_shaped = jwt_shaped_token();
    assert!((750..=850).contains(&jwt_shaped.len()), "{} bytes", jwt_shaped.len());
    let jwt_shaped = AccessToken::new(jwt_shaped.as_bytes());
    for token in [&opaque, &jwt_shaped] {
        auth.validate(token).expect("first validation introspects");
    }
    let misses = auth.metrics().cache_misses.load(std::sync::atomic::Ordering::Relaxed);

    let mut group = c.benchmark_group("cache/hit");
    group.bench_function("opaque_40b", |b| b.iter(|| auth.validate(black_box(&opaque)).is_ok()));
    group.bench_function("jwt_shaped_800b", |b| {
        b.iter(|| auth.validate(black_box(&jwt_shaped)).is_ok());
    });
    group.finish();
    let misses_after = auth.metrics().cache_misses.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(misses, misses_after, "every benchmarked validation was a cache hit");
}

fn jwt_verification(c: &mut Criterion) {
    let dir = TempDir::new();
    let (jwks, pem) = rsa_key_and_jwks(&dir.0);
    let config = Config::from_pairs([
        ("oauth_jwks_file", jwks.to_str().expect("UTF-8 temp path")),
        ("oauth_algorithms", "RS256"),
        ("oauth_cache_ttl", "0"),
        ("oauth_cache_negative_ttl", "0"),
    ])
    .expect("valid JWT config");
    let auth = Authenticator::new(config).expect("authenticator");
    let token = AccessToken::new(signed_token(&pem).as_bytes());
    let info = auth.validate(&token).expect("the signed token verifies");
    assert_eq!(info.source, TokenSource::Jwt);
    let hits = || auth.metrics().cache_hits.load(std::sync::atomic::Ordering::Relaxed);
    let hits_before = hits();

    let mut group = c.benchmark_group("jwt/verify_rs256");
    group.bench_function("validate_uncached", |b| {
        b.iter(|| auth.validate(black_box(&token)).is_ok());
    });
    group.finish();
    assert_eq!(hits(), hits_before, "with oauth_cache_ttl 0 every validation verifies");
}

fn benches(c: &mut Criterion) {
    let auth = introspecting_authenticator();
    acl_decisions(c, &auth);
    cache_hits(c, &auth);
    jwt_verification(c);
}

criterion_group! {
    name = acl;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(acl);
