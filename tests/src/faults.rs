//! Misbehaving authorization servers for the fault-injection suite (`tests/faults.rs`).
//!
//! [`FaultServer`] is the suites' one HTTP stub (`tests/http-stub`) on a loopback port, whose
//! behaviour ([`Fault`]) can be switched while the broker runs, and which can go down (port
//! closed: connection refused) and come back on the same port. [`TlsServer`] is `openssl s_server` with a certificate from
//! a freshly made CA, i.e. HTTPS with a CA nobody trusts.
//!
//! Answers that carry content (500, garbage) echo the request, headers included: a broker that
//! ever quoted an upstream answer in its log would then leak the token and the client secret,
//! which the suite checks for.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use http_stub::{Reply, Request, Stub};

use crate::tls::openssl;
use crate::{ProcessGuard, free_port, wait_for_port};

/// Size of the [`Fault::Huge`] and [`Fault::HugeUnannounced`] bodies.
pub const HUGE_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Pause between two bytes of a [`Fault::Drip`] body.
pub const DRIP_PAUSE: Duration = Duration::from_millis(200);

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

/// A misbehaving authorization server: the suites' one HTTP stub ([`http_stub::Stub`]) answering
/// as a [`Fault`] says. Dropping it closes the port and ends every connection it holds open.
#[derive(Debug)]
pub struct FaultServer {
    stub: Stub,
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
        let server = Self { stub: Stub::down(|_| Reply::Hang) };
        server.set(fault);
        server
    }

    /// The port (the same while down and after coming back up).
    pub fn port(&self) -> u16 {
        self.stub.port()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        self.stub.url(path)
    }

    /// Switches the behaviour for requests from now on.
    pub fn set(&self, fault: Fault) {
        match fault {
            Fault::Close => self.stub.close_at_once(),
            fault => self.stub.respond(move |request| answer(&fault, request)),
        }
    }

    /// Requests read so far (a [`Fault::Close`] connection counts as none).
    pub fn requests(&self) -> usize {
        self.stub.count()
    }

    /// Starts listening on the port again.
    pub fn come_up(&mut self) {
        self.stub.come_up();
    }

    /// Closes the port (connections are refused) and ends the connections held open; returns
    /// once nothing listens any more.
    pub fn go_down(&mut self) {
        self.stub.go_down();
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// What the server answers to `request` under `fault` (never [`Fault::Close`]).
fn answer(fault: &Fault, request: &Request) -> Reply {
    match fault {
        Fault::Introspection(active) => {
            let token = request.form_field("token").unwrap_or_default();
            Reply::json(match active.iter().find(|(known, _)| known == token) {
                Some((_, scope)) => serde_json::json!({
                    "active": true,
                    "scope": scope,
                    "client_id": "fault-server-client",
                    "token_type": "Bearer",
                    "exp": now_epoch() + 3600,
                }),
                None => serde_json::json!({ "active": false }),
            })
        }
        Fault::Json(body) => Reply::raw(200, "application/json", body.as_bytes()),
        Fault::ServerError => {
            let mut body = b"<html><body><h1>Internal Server Error</h1><pre>".to_vec();
            body.extend_from_slice(&request.raw);
            body.extend_from_slice(b"</pre></body></html>");
            Reply::raw(500, "text/html", body)
        }
        Fault::Garbage => {
            let mut body = b"<<not json>> you sent: ".to_vec();
            body.extend_from_slice(&request.raw);
            Reply::raw(200, "application/json", body)
        }
        Fault::Huge | Fault::HugeUnannounced => {
            // A JSON string that never closes.
            let mut body = b"{\"active\":true,\"pad\":\"".to_vec();
            body.resize(HUGE_BODY_BYTES, b'x');
            let reply = Reply::raw(200, "application/json", body);
            if *fault == Fault::Huge { reply } else { reply.unannounced() }
        }
        Fault::Drip => Reply::raw(200, "application/json", vec![b' '; 4096]).dripping(DRIP_PAUSE),
        Fault::Hang | Fault::Close => Reply::Hang,
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
        openssl(dir, &args);
        let mut args = words(&["req", "-subj", "/CN=127.0.0.1"]);
        args.extend(ec);
        args.extend([keyout, key.clone(), out.clone(), csr.clone()]);
        openssl(dir, &args);
        std::fs::write(&ext, "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n")
            .expect("certificate extensions file");
        let mut args = words(&["x509", "-req", "-days", "1", "-set_serial", "2", "-in"]);
        args.extend([csr, "-CA".into(), ca.clone(), "-CAkey".into(), ca_key]);
        args.extend(["-extfile".into(), ext, out, cert.clone()]);
        openssl(dir, &args);

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
