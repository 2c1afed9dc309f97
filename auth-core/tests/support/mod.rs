//! Test support shared by the core's integration tests: a scriptable HTTP stub for fault
//! injection, a log capture, and JWT signing with the fixture keys.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth_core::{AccessToken, Authenticator, Config};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send the body one byte at a time with this pause between bytes.
    pub drip: Option<Duration>,
}

impl Reply {
    pub fn json(value: serde_json::Value) -> Self {
        Self::raw(200, "application/json", value.to_string().into_bytes())
    }

    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type: content_type.into(),
            body: body.into(),
            delay: Duration::ZERO,
            drip: None,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A minimal HTTP/1.1 server on a free loopback port; one thread per connection.
pub struct Stub {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    responder: Arc<Mutex<Arc<Responder>>>,
}

impl Stub {
    pub fn start(responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let responder: Arc<Mutex<Arc<Responder>>> = Arc::new(Mutex::new(Arc::new(responder)));
        let (log, current) = (Arc::clone(&requests), Arc::clone(&responder));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, current) = (Arc::clone(&log), Arc::clone(&current));
                std::thread::spawn(move || serve(stream, &log, &current));
            }
        });
        Self { port, requests, responder }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Replaces the answer for requests from now on.
    pub fn respond(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.responder.lock().unwrap() = Arc::new(responder);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Recorded>>, responder: &Mutex<Arc<Responder>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request =
        Recorded { method, target, headers, body: String::from_utf8_lossy(&body).into_owned() };
    log.lock().unwrap().push(request.clone());
    let respond = Arc::clone(&responder.lock().unwrap());
    let reply = respond(&request);
    std::thread::sleep(reply.delay);
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    match reply.drip {
        None => {
            let _ = stream.write_all(&reply.body);
        }
        Some(pause) => {
            for byte in &reply.body {
                if stream.write_all(&[*byte]).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
    }
}

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
