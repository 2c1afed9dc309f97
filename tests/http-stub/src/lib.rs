//! The one scriptable HTTP/1.1 server of the test suites: the core's integration tests answer
//! introspection and JWKS requests with it, and the end-to-end fault suite builds its
//! misbehaving authorization servers on it (`tests/src/faults.rs`).
//!
//! A [`Stub`] listens on a free loopback port, records every request it reads, and answers
//! each with what its responder returns for that request ([`Reply`]): an answer (optionally late,
//! dripped byte by byte, or without `Content-Length`), or no answer at all ([`Reply::Hang`]). It
//! can also close every connection at once without reading ([`Stub::close_at_once`]), go down
//! (connections refused) and come back on the same port. Every wait is bounded; dropping the
//! stub closes the port and ends the connections it holds.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a connection waits for a request before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Stub::come_up`] waits for its port to accept connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);

/// One request the stub read.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header lines, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
    /// The whole request as received (head and body), e.g. to echo it back.
    pub raw: Vec<u8>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A field of an `application/x-www-form-urlencoded` body, as sent (not decoded).
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.body.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

/// What the stub does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP answer.
    Answer {
        /// Status code.
        status: u16,
        /// `Content-Type`.
        content_type: String,
        /// Body.
        body: Vec<u8>,
        /// Wait this long before answering.
        delay: Duration,
        /// Send the body one byte at a time with this pause between bytes.
        drip: Option<Duration>,
        /// Announce the body's length (`Content-Length`); without, it ends when the connection
        /// closes.
        announce_length: bool,
    },
    /// Never answer: hold the connection until the client gives up or the stub goes down.
    Hang,
}

impl Reply {
    /// `200 application/json` with this document.
    pub fn json(value: serde_json::Value) -> Self {
        Self::raw(200, "application/json", value.to_string().into_bytes())
    }

    /// Any status, content type and body.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::Answer {
            status,
            content_type: content_type.into(),
            body: body.into(),
            delay: Duration::ZERO,
            drip: None,
            announce_length: true,
        }
    }

    /// The same answer, `delay` later.
    #[must_use]
    pub fn delayed(mut self, by: Duration) -> Self {
        if let Self::Answer { delay, .. } = &mut self {
            *delay = by;
        }
        self
    }

    /// The same answer, its body sent one byte every `pause`.
    #[must_use]
    pub fn dripping(mut self, pause: Duration) -> Self {
        if let Self::Answer { drip, .. } = &mut self {
            *drip = Some(pause);
        }
        self
    }

    /// The same answer without `Content-Length`.
    #[must_use]
    pub fn unannounced(mut self) -> Self {
        if let Self::Answer { announce_length, .. } = &mut self {
            *announce_length = false;
        }
        self
    }
}

type Responder = dyn Fn(&Request) -> Reply + Send + Sync;

#[derive(Clone)]
enum Behaviour {
    Respond(Arc<Responder>),
    CloseAtOnce,
}

struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<Request>>,
    /// Set when the stub goes down or is dropped: connection threads end.
    stop: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The accepting half of a stub that is up.
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A scriptable HTTP server; see the crate documentation.
pub struct Stub {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<Acceptor>,
}

impl std::fmt::Debug for Stub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("port", &self.port)
            .field("up", &self.acceptor.is_some())
            .finish()
    }
}

impl Stub {
    /// A stub on a free port, answering with `responder`.
    pub fn start(responder: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let mut stub = Self::down(responder);
        stub.come_up();
        stub
    }

    /// A stub that is down (nothing listens on its port) until [`come_up`](Self::come_up).
    pub fn down(responder: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(Behaviour::Respond(Arc::new(responder))),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        Self { port: free_port(), shared, acceptor: None }
    }

    /// The port (the same while down and after coming back up).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers requests from now on with `responder`.
    pub fn respond(&self, responder: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.behaviour) = Behaviour::Respond(Arc::new(responder));
    }

    /// From now on, closes every connection at once, without reading or answering.
    pub fn close_at_once(&self) {
        *lock(&self.shared.behaviour) = Behaviour::CloseAtOnce;
    }

    /// The requests read so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were read so far (a connection closed at once counts as none).
    pub fn count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Starts listening on the port again (SO_REUSEADDR lets it rebind at once).
    pub fn come_up(&mut self) {
        if self.acceptor.is_some() {
            return;
        }
        self.shared.stop.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{}: {e}", self.port));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (Arc::clone(&self.shared), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
            // The listener drops here: the port refuses connections from now on.
        });
        self.acceptor = Some(Acceptor { stop, thread });
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "stub on port {} never listened", self.port);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes the port (connections are refused) and ends the connections held open; returns
    /// once nothing listens any more.
    pub fn go_down(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        acceptor.stop.store(true, Ordering::SeqCst);
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = acceptor.thread.join();
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let behaviour = lock(&shared.behaviour).clone();
    let Behaviour::Respond(responder) = behaviour else {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Some(request) = read_request(&mut stream) else { return };
    lock(&shared.requests).push(request.clone());
    match responder(&request) {
        Reply::Answer { status, content_type, body, delay, drip, announce_length } => {
            std::thread::sleep(delay);
            let length = if announce_length {
                format!("content-length: {}\r\n", body.len())
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n{length}connection: close\r\n\r\n",
                reason_phrase(status)
            );
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let (piece, pause) = match drip {
                Some(pause) => (1, pause),
                None => (64 * 1024, Duration::ZERO),
            };
            for chunk in body.chunks(piece) {
                if shared.stop.load(Ordering::SeqCst) || stream.write_all(chunk).is_err() {
                    return;
                }
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
            }
        }
        Reply::Hang => {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let mut sink = [0u8; 256];
            while !shared.stop.load(Ordering::SeqCst) {
                match stream.read(&mut sink) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        }
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Reads one request (head and `Content-Length` body); `None` if the peer gave up.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let mut lines = head.lines();
            let mut start = lines.next().unwrap_or_default().split_whitespace();
            let (method, target) = (
                start.next().unwrap_or_default().to_owned(),
                start.next().unwrap_or_default().to_owned(),
            );
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .collect();
            let length = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]).into_owned();
                return Some(Request { method, target, headers, body, raw });
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}
