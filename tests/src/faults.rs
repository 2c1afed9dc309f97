//! Misbehaving authorization servers for the fault-injection suite (`tests/faults.rs`).
//!
//! [`FaultServer`] is a minimal HTTP/1.1 server on a loopback port whose behaviour ([`Fault`]) can
//! be switched while the broker runs, and which can go down (port closed: connection refused)
//! and come back on the same port. [`TlsServer`] is `openssl s_server` with a certificate from
//! a freshly made CA, i.e. HTTPS with a CA nobody trusts.
//!
//! Answers that carry content (500, garbage) echo the request, headers included: a broker that
//! ever quoted an upstream answer in its log would then leak the token and the client secret,
//! which the suite checks for.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{ProcessGuard, free_port, wait_for_port};

/// Size of the [`Fault::Huge`] and [`Fault::HugeUnannounced`] bodies.
pub const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Pause between two bytes of a [`Fault::Drip`] body.
pub const DRIP_PAUSE: Duration = Duration::from_millis(200);
/// How long a connection thread waits for a request before giving up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A working RFC 7662 endpoint: `active: true` with the listed scope string for the listed
    /// tokens (`(token, scope)`), `active: false` for any other token. Valid for an hour.
    Introspection(Vec<(String, String)>),
    /// `200 application/json` with this document (e.g. a JWKS).
    Json(String),
    /// Accepts the connection and closes it at once, without reading or answering.
    Close,
    /// `500` with an HTML body echoing the request.
    ServerError,
    /// `200 application/json` with a body that is not JSON (and echoes the request).
    Garbage,
    /// `200 application/json` with a 10 MB body, announced by `Content-Length`.
    Huge,
    /// `200 application/json` with a 10 MB body without `Content-Length` (ends at close).
    HugeUnannounced,
    /// Headers announcing a small (4 KiB) body, then one byte every [`DRIP_PAUSE`]: never
    /// finishes within any sane timeout, yet is never idle long enough for a per-read timeout,
    /// and is small enough to pass any size cap.
    Drip,
    /// Reads the request and never answers (the connection stays open), like a stopped server.
    Hang,
}

#[derive(Debug)]
struct Shared {
    fault: Mutex<Fault>,
    requests: AtomicUsize,
    /// Set when the server goes down or is dropped: connection threads end.
    stop: AtomicBool,
}

/// The accepting half of a server that is up.
#[derive(Debug)]
struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// A scriptable HTTP server; see the module documentation. Dropping it closes the port and ends
/// every connection it holds open.
#[derive(Debug)]
pub struct FaultServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<Acceptor>,
}

impl FaultServer {
    /// A server on a free port, answering with `fault`.
    pub fn start(fault: Fault) -> Self {
        let mut server = Self::down(fault);
        server.come_up();
        server
    }

    /// A server that is down (nothing listens on its port) until [`come_up`](Self::come_up).
    pub fn down(fault: Fault) -> Self {
        let shared = Arc::new(Shared {
            fault: Mutex::new(fault),
            requests: AtomicUsize::new(0),
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

    /// Switches the behaviour for requests from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// Requests read so far (a [`Fault::Close`] connection counts as none).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
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
        wait_for_port(self.port, Duration::from_secs(5));
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

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// Reads one request (head and `Content-Length` body); `None` if the peer gave up.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return Some(request);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The `token` form field of an introspection request body.
fn form_token(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let (_, body) = text.split_once("\r\n\r\n")?;
    body.split('&').find_map(|pair| pair.strip_prefix("token=")).map(str::to_owned)
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn head(status: &str, content_type: &str, length: Option<usize>) -> String {
    let length = length.map(|n| format!("content-length: {n}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{length}connection: close\r\n\r\n"
    )
}

/// Writes `head` and `body` in one go; errors (the client gave up) are ignored.
fn answer(stream: &mut TcpStream, head: &str, body: &[u8]) {
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let fault = shared.fault.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if fault == Fault::Close {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let Some(request) = read_request(&mut stream) else { return };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    match fault {
        Fault::Introspection(active) => {
            let token = form_token(&request).unwrap_or_default();
            let body = match active.iter().find(|(known, _)| *known == token) {
                Some((_, scope)) => serde_json::json!({
                    "active": true,
                    "scope": scope,
                    "client_id": "fault-server-client",
                    "token_type": "Bearer",
                    "exp": now_epoch() + 3600,
                }),
                None => serde_json::json!({ "active": false }),
            }
            .to_string();
            answer(
                &mut stream,
                &head("200 OK", "application/json", Some(body.len())),
                body.as_bytes(),
            );
        }
        Fault::Json(body) => {
            answer(
                &mut stream,
                &head("200 OK", "application/json", Some(body.len())),
                body.as_bytes(),
            );
        }
        Fault::ServerError => {
            let mut body = b"<html><body><h1>Internal Server Error</h1><pre>".to_vec();
            body.extend_from_slice(&request);
            body.extend_from_slice(b"</pre></body></html>");
            answer(
                &mut stream,
                &head("500 Internal Server Error", "text/html", Some(body.len())),
                &body,
            );
        }
        Fault::Garbage => {
            let mut body = b"<<not json>> you sent: ".to_vec();
            body.extend_from_slice(&request);
            answer(&mut stream, &head("200 OK", "application/json", Some(body.len())), &body);
        }
        Fault::Huge | Fault::HugeUnannounced => {
            let length = (fault == Fault::Huge).then_some(HUGE_BODY_BYTES);
            if stream.write_all(head("200 OK", "application/json", length).as_bytes()).is_err() {
                return;
            }
            // A JSON string that never closes, 64 KiB at a time, until 10 MB or the client hangs up.
            let chunk = vec![b'x'; 64 * 1024];
            let _ = stream.write_all(b"{\"active\":true,\"pad\":\"");
            for _ in 0..HUGE_BODY_BYTES / chunk.len() {
                if shared.stop.load(Ordering::SeqCst) || stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        Fault::Drip => {
            if stream.write_all(head("200 OK", "application/json", Some(4096)).as_bytes()).is_err()
            {
                return;
            }
            for _ in 0..4096 {
                if shared.stop.load(Ordering::SeqCst) || stream.write_all(b" ").is_err() {
                    return;
                }
                std::thread::sleep(DRIP_PAUSE);
            }
        }
        Fault::Hang => {
            // Hold the connection until the client gives up or the server goes down.
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
        Fault::Close => {}
    }
}

/// HTTPS (`openssl s_server -www`) with a certificate for `127.0.0.1` issued by a CA made for
/// the occasion, which no client trusts unless given [`ca_file`](Self::ca_file). Killed when
/// dropped.
#[derive(Debug)]
pub struct TlsServer {
    port: u16,
    ca_file: PathBuf,
    _process: ProcessGuard,
}

/// Runs `openssl` with `args`, panicking with its stderr if it fails.
fn openssl(args: &[OsString]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Command-line words.
fn words(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

impl TlsServer {
    /// Makes a CA and a server certificate signed by it in `dir` with the `openssl` CLI, and
    /// serves on a free port; returns once the port accepts connections.
    pub fn start(dir: &Path) -> Self {
        let path = |name: &str| dir.join(name).into_os_string();
        let (ca_key, ca, key, csr, cert, ext) = (
            path("ca-key.pem"),
            path("ca.pem"),
            path("tls-key.pem"),
            path("tls.csr"),
            path("tls-cert.pem"),
            path("tls-ext.cnf"),
        );
        let ec = words(&["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]);
        let (keyout, out) = (OsString::from("-keyout"), OsString::from("-out"));
        let mut args = words(&["req", "-x509", "-days", "1", "-subj", "/CN=fault-suite-ca"]);
        args.extend(ec.iter().cloned());
        args.extend([keyout.clone(), ca_key.clone(), out.clone(), ca.clone()]);
        openssl(&args);
        let mut args = words(&["req", "-subj", "/CN=127.0.0.1"]);
        args.extend(ec);
        args.extend([keyout, key.clone(), out.clone(), csr.clone()]);
        openssl(&args);
        std::fs::write(&ext, "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n")
            .expect("certificate extensions file");
        let mut args = words(&["x509", "-req", "-days", "1", "-set_serial", "2", "-in"]);
        args.extend([csr, "-CA".into(), ca.clone(), "-CAkey".into(), ca_key]);
        args.extend(["-extfile".into(), ext, out, cert.clone()]);
        openssl(&args);

        let port = free_port();
        let mut command = Command::new("openssl");
        command
            .args(["s_server", "-www", "-quiet", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = ProcessGuard::spawn("openssl s_server", &mut command);
        wait_for_port(port, Duration::from_secs(10));
        Self { port, ca_file: PathBuf::from(ca), _process: process }
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The PEM file of the CA that issued the server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The address, e.g. to check it still accepts connections.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}
