//! Harness for end-to-end tests: real processes on free loopback ports, killed when dropped.
//!
//! Nothing here sleeps for a fixed time: readiness is a port accepting connections or a line on
//! a child's stdout, both with a deadline.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command};
use std::time::{Duration, Instant};

pub mod fallback;
pub mod faults;
pub mod idp;
pub mod mosquitto;
pub mod mqtt;
mod process_log;
pub mod scenarios;
pub mod tls;

/// A child process that is killed and reaped when the guard goes out of scope, so a failing
/// test never leaves a server behind.
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    child: Child,
}

impl ProcessGuard {
    /// Spawns `command` and guards it.
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name: name.to_owned(), child }
    }

    /// The process id, for signals (e.g. SIGSTOP/SIGHUP in fault tests).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Takes the child's piped stdout (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Mutable access to the child, e.g. to wait for its exit status.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago. The OS picks it, so parallel tests do not collide.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free loopback port")
}

/// Polls until something accepts TCP connections on `127.0.0.1:port`, or panics after `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listening on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads lines from `stdout` until one satisfies `accept`, returning it; an error saying why at
/// EOF or after `timeout`. Used to wait for a server's "ready" line instead of sleeping.
pub fn wait_for_line(
    stdout: ChildStdout,
    timeout: Duration,
    accept: impl Fn(&str) -> bool + Send + 'static,
) -> Result<String, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = sender.send(None);
                    return;
                }
                Ok(_) if accept(line.trim_end()) => {
                    let _ = sender.send(Some(line.trim_end().to_owned()));
                    // Keep draining so the child never blocks on a full pipe.
                    let mut sink = String::new();
                    while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                        sink.clear();
                    }
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    match receiver.recv_timeout(timeout) {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err("process closed its output before the expected line".to_owned()),
        Err(_) => Err(format!("expected line not seen within {timeout:?}")),
    }
}

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A fixture key file of the core's tests (`auth-core/tests/keys/<name>`: `rsa-1.pem`,
/// `ec-1.pem`, `jwks-1.json`, ...), read as text.
pub fn fixture_key(name: &str) -> String {
    let path = workspace_root().join("auth-core").join("tests").join("keys").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A file cargo built for `package`: `<target dir>/<profile>/<file_name>`, where the target dir
/// is `$CARGO_TARGET_DIR` (relative to the workspace root if relative) or `<workspace>/target`
/// and the profile `$MOSQUITTO_OAUTH_PROFILE` or `debug`. Panics if the file does not exist.
pub fn built_artifact(file_name: &str, package: &str) -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(PathBuf::from(dir)));
    let profile = std::env::var("MOSQUITTO_OAUTH_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    let path = target.join(profile).join(file_name);
    assert!(
        path.is_file(),
        "{} does not exist: build it first: cargo build -p {package}",
        path.display()
    );
    path
}
