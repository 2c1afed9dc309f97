//! Test support shared by the core's integration tests: the suites' one HTTP stub
//! (`tests/http-stub`), a log capture, and JWT signing with the fixture keys.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stdout)]

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use oauth_core::{AccessToken, Authenticator, Config};

pub use http_stub::{Reply, Stub};

/// Captures every log line of the test process so tests can assert what was (not) logged.
struct Capture;

static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.get_or_init(Default::default).lock().unwrap().push(format!(
            "{} {}",
            record.level(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

/// Installs the capture (idempotent) and returns every line logged so far.
pub fn logged_lines() -> Vec<String> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Trace);
    });
    LINES.get_or_init(Default::default).lock().unwrap().clone()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

pub fn key_file(name: &str) -> String {
    std::fs::read_to_string(key_path(name)).unwrap()
}

/// Signs `claims` with a fixture key (`rsa-1`, `rsa-2`, `ec-1`), setting `kid` to the key name.
pub fn sign(key: &str, claims: &serde_json::Value) -> String {
    sign_with(key, Some(key), Some("at+jwt"), claims)
}

pub fn sign_with(
    key: &str,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &serde_json::Value,
) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = key_file(&format!("{key}.pem"));
    let (alg, encoding) = if key.starts_with("ec") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes()).unwrap())
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

pub fn authenticator(pairs: &[(&str, &str)]) -> Authenticator {
    Authenticator::new(Config::from_pairs(pairs.iter().copied()).unwrap()).unwrap()
}

pub fn token(text: &str) -> AccessToken {
    AccessToken::new(text.as_bytes())
}
