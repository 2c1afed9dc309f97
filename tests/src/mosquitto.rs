//! A real Mosquitto broker for end-to-end tests, started from a config the test writes.
//!
//! ```ignore
//! let config = MosquittoConfig::new();
//! let passwd = config.password_file(&[("alice", "secret")]);
//! let broker = config.start(|ports| {
//!     format!(
//!         "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
//!         ports.main,
//!         passwd.display()
//!     )
//! });
//! broker.expect_log("running", Duration::from_secs(1));
//! ```
//!
//! The harness adds what every test config needs (log everything to stderr, `user root` when
//! the tests run as root) and nothing about authentication. Its output (stderr and stdout) is
//! captured by threads into a shared buffer. Readiness is the log line "mosquitto version ...
//! running" plus every `listener`/`port` of the config accepting TCP; no fixed sleeps.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process_log::ProcessLog;

use crate::{ProcessGuard, free_port, workspace_root};

/// How long a broker may take to start listening (or to exit, for bad-config tests).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The line Mosquitto logs once its listeners are open and its signal handlers installed.
const RUNNING_MARKER: &str = " running";
/// The line Mosquitto logs when it handles SIGHUP.
const RELOAD_MARKER: &str = "Reloading config.";

/// The Mosquitto executable: `$MOSQUITTO_BIN`, or `/usr/sbin/mosquitto`.
pub fn mosquitto_binary() -> PathBuf {
    std::env::var_os("MOSQUITTO_BIN")
        .map_or_else(|| PathBuf::from("/usr/sbin/mosquitto"), PathBuf::from)
}

/// The Mosquitto 2.1 broker fetched by `tests/mosquitto-2.1/fetch.sh`: `$MOSQUITTO_21_BIN`, else
/// `<workspace>/target/mosquitto-2.1/mosquitto` if it exists; `None` if neither (tests that need
/// it skip). Start a config on it with [`MosquittoConfig::binary`].
pub fn mosquitto_21_binary() -> Option<PathBuf> {
    std::env::var_os("MOSQUITTO_21_BIN").map(PathBuf::from).or_else(|| {
        let path = workspace_root().join("target").join("mosquitto-2.1").join("mosquitto");
        path.is_file().then_some(path)
    })
}

/// The `mosquitto_passwd` executable: `$MOSQUITTO_PASSWD_BIN`, or `/usr/bin/mosquitto_passwd`.
pub fn mosquitto_passwd_binary() -> PathBuf {
    std::env::var_os("MOSQUITTO_PASSWD_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/mosquitto_passwd"), PathBuf::from)
}

/// The built plugin, `<target dir>/<profile>/libmosquitto_oauth.so`: the target dir is
/// `$CARGO_TARGET_DIR` (relative to the workspace root if relative) or `<workspace>/target`,
/// the profile `$MOSQUITTO_OAUTH_PROFILE` or `debug`. Panics if the file does not exist.
pub fn plugin_path() -> PathBuf {
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(PathBuf::from(dir)));
    let profile = std::env::var("MOSQUITTO_OAUTH_PROFILE").unwrap_or_else(|_| "debug".to_owned());
    let path = target.join(profile).join("libmosquitto_oauth.so");
    assert!(
        path.is_file(),
        "{} does not exist: build it first: cargo build -p mosquitto-oauth-plugin",
        path.display()
    );
    path
}

/// Writes `<dir>/passwd` with `mosquitto_passwd` (hashed entries for `users`, as
/// `(user, password)`), replacing any earlier file, and returns its path.
pub fn password_file(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("passwd");
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    for (user, password) in users {
        let output = Command::new(mosquitto_passwd_binary())
            .arg("-b")
            .arg(&path)
            .arg(user)
            .arg(password)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mosquitto_passwd: {e}"));
        assert!(
            output.status.success(),
            "mosquitto_passwd for {user:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    path
}

/// True if this process runs with effective uid 0 (read from `/proc/self/status`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .and_then(|line| line.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Loopback ports allocated for one broker, free when allocated, distinct from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The port for the main listener.
    pub main: u16,
    /// A port for a second listener (e.g. with other per-listener settings).
    pub second: u16,
}

impl Ports {
    fn allocate() -> Self {
        let main = free_port();
        let mut second = free_port();
        while second == main {
            second = free_port();
        }
        Self { main, second }
    }
}

/// The text of the config the harness puts before the test's config body.
fn config_header(log_types: &str) -> String {
    let mut header =
        String::from("# Generated by the mosquitto-oauth-e2e harness.\nlog_dest stderr\n");
    // Mosquitto reads one type per `log_type` line.
    for log_type in log_types.split_whitespace() {
        header.push_str(&format!("log_type {log_type}\n"));
    }
    if running_as_root() {
        // Mosquitto started as root drops to the `mosquitto` user before loading plugins and
        // reading files unless told to stay root.
        header.push_str("user root\n");
    }
    header.push_str("# Test config:\n");
    header
}

/// The `listener` and `port` ports of a config (unix sockets, port 0, are skipped).
fn listener_ports(config: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for line in config.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("listener" | "port"))
            && let Some(port) = words.next().and_then(|word| word.parse::<u16>().ok())
            && port != 0
            && !ports.contains(&port)
        {
            ports.push(port);
        }
    }
    ports
}

/// A broker config being prepared: a fresh temp dir for its files and two allocated ports.
/// Write files with [`file`](Self::file)/[`write_file`](Self::write_file)/
/// [`password_file`](Self::password_file), then [`start`](Self::start) with the config body.
#[derive(Debug)]
pub struct MosquittoConfig {
    dir: TempDir,
    ports: Ports,
    env: Vec<(String, String)>,
    /// The broker executable; `None`: [`mosquitto_binary`].
    binary: Option<PathBuf>,
    /// The header's `log_type` words.
    log_types: String,
}

impl Default for MosquittoConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl MosquittoConfig {
    /// A new temp dir and two free ports.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mosquitto-e2e-")
            .tempdir()
            .expect("temp dir for the broker config");
        Self {
            dir,
            ports: Ports::allocate(),
            env: Vec::new(),
            binary: None,
            log_types: "all".to_owned(),
        }
    }

    /// The temp dir holding the config and the test's files (removed when the broker drops).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ports allocated for this broker.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Writes `<dir>/<name>` (builder style).
    #[must_use]
    pub fn file(self, name: &str, content: impl AsRef<[u8]>) -> Self {
        self.write_file(name, content);
        self
    }

    /// Writes `<dir>/<name>` and returns its path.
    pub fn write_file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes `<dir>/passwd` for `users` with `mosquitto_passwd`; see [`password_file`].
    pub fn password_file(&self, users: &[(&str, &str)]) -> PathBuf {
        password_file(self.dir(), users)
    }

    /// Sets an environment variable for the broker process (e.g. for the plugin).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs `path` as the broker instead of [`mosquitto_binary`] (e.g. [`mosquitto_21_binary`]).
    /// Mosquitto 2.0 and 2.1 log the same "mosquitto version X running" line, so readiness,
    /// reload and stop work the same.
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Replaces the header's `log_type all` with the given Mosquitto log types (space-separated,
    /// e.g. `"error warning notice information"`). Benchmarks use it to leave out `debug`: with it the broker writes lines for
    /// every packet, and that cost would be measured too. Keep `notice`: readiness is a notice.
    #[must_use]
    pub fn log_types(mut self, types: &str) -> Self {
        types.clone_into(&mut self.log_types);
        self
    }

    /// Writes the config (harness header + `body(&ports)`), starts Mosquitto and waits until it
    /// logs "running" and every `listener`/`port` accepts TCP. Panics with the log if the
    /// broker exits or is not ready within [`START_TIMEOUT`].
    pub fn start(self, body: impl FnOnce(&Ports) -> String) -> Mosquitto {
        let mut broker = self.launch(body);
        let deadline = Instant::now() + START_TIMEOUT;
        let running = broker.log.wait_until(START_TIMEOUT, |state| {
            state.open == 0 || state.text.lines().any(is_running_line)
        });
        if !running || !broker.log().lines().any(is_running_line) {
            let status = broker.guard.child_mut().try_wait().ok().flatten();
            broker.log.wait_until(Duration::from_secs(2), |state| state.open == 0);
            panic!(
                "mosquitto did not start (exit status: {status:?}); config:\n{}\nlog:\n{}",
                broker.config_text,
                broker.log()
            );
        }
        for port in listener_ports(&broker.config_text) {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "mosquitto does not accept TCP on port {port}; log:\n{}",
                    broker.log()
                );
                if let Ok(Some(status)) = broker.guard.child_mut().try_wait() {
                    panic!("mosquitto exited with {status}; log:\n{}", broker.log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        broker
    }

    /// Writes the config and starts Mosquitto expecting it to exit (bad-config tests): waits up
    /// to [`START_TIMEOUT`] for the exit and returns its status and the complete log. Panics
    /// with the log if it is still running.
    pub fn start_expect_exit(self, body: impl FnOnce(&Ports) -> String) -> (ExitStatus, String) {
        let mut broker = self.launch(body);
        if !broker.log.wait_until(START_TIMEOUT, |state| state.open == 0) {
            panic!("mosquitto did not exit within {START_TIMEOUT:?}; log:\n{}", broker.log());
        }
        let status = broker.guard.child_mut().wait().expect("mosquitto exit status");
        (status, broker.log())
    }

    fn launch(self, body: impl FnOnce(&Ports) -> String) -> Mosquitto {
        let config_text = format!("{}{}\n", config_header(&self.log_types), body(&self.ports));
        let config_path = self.dir().join("mosquitto.conf");
        std::fs::write(&config_path, &config_text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let binary = self.binary.clone().unwrap_or_else(mosquitto_binary);
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config_path)
            .current_dir(self.dir())
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let name = match &self.binary {
            Some(path) => format!("mosquitto ({})", path.display()),
            None => "mosquitto".to_owned(),
        };
        let mut guard = ProcessGuard::spawn(&name, &mut command);
        let echo =
            std::env::var_os("MOSQUITTO_E2E_ECHO").map(|_| format!("[mosquitto {}] ", guard.pid()));
        let log = Arc::new(ProcessLog::default());
        let stderr = guard.child_mut().stderr.take().expect("mosquitto stderr is piped");
        let stdout = guard.take_stdout().expect("mosquitto stdout is piped");
        log.capture(stderr, echo.clone());
        log.capture(stdout, echo);
        Mosquitto { guard, log, ports: self.ports, config_path, config_text, dir: self.dir }
    }
}

fn is_running_line(line: &str) -> bool {
    line.contains("mosquitto version") && line.ends_with(RUNNING_MARKER)
}

/// A running Mosquitto, killed when dropped (its temp dir is removed after that).
#[derive(Debug)]
pub struct Mosquitto {
    // Field order matters: the process is killed before the dir is removed.
    guard: ProcessGuard,
    log: Arc<ProcessLog>,
    ports: Ports,
    config_path: PathBuf,
    config_text: String,
    dir: TempDir,
}

impl Mosquitto {
    /// Shorthand for `MosquittoConfig::new().start(body)`.
    pub fn start(body: impl FnOnce(&Ports) -> String) -> Mosquitto {
        MosquittoConfig::new().start(body)
    }

    /// Shorthand for `MosquittoConfig::new().start_expect_exit(body)`.
    pub fn start_expect_exit(body: impl FnOnce(&Ports) -> String) -> (ExitStatus, String) {
        MosquittoConfig::new().start_expect_exit(body)
    }

    /// The allocated ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The main port (`ports().main`).
    pub fn port(&self) -> u16 {
        self.ports.main
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The temp dir holding the config and the test's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file path (its content may be rewritten before a [`reload`](Self::reload)).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The full config text the broker was started with (header included).
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// Everything the broker has written to stderr and stdout so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// The log lines containing `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.log().lines().filter(|line| line.contains(needle)).map(str::to_owned).collect()
    }

    /// A position in the log, for [`wait_for_log_since`](Self::wait_for_log_since) and
    /// [`log_since`](Self::log_since).
    pub fn log_mark(&self) -> usize {
        self.log.mark()
    }

    /// The log written after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        self.log.since(mark)
    }

    /// Waits up to `timeout` for `needle` to appear in the log; whether it did.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_since(0, needle, timeout)
    }

    /// Waits up to `timeout` for `needle` to appear in the log after `mark`; whether it did.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        self.log.wait_until(timeout, |state| {
            state.text.get(mark..).is_some_and(|text| text.contains(needle))
        })
    }

    /// Like [`wait_for_log`](Self::wait_for_log), but panics with the log if `needle` does not
    /// appear.
    pub fn expect_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_for_log(needle, timeout),
            "{needle:?} not in the mosquitto log within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// Sends a signal by name (`"HUP"`, `"STOP"`, `"CONT"`, ...) with `kill`; panics with the
    /// log if that fails (e.g. the broker has exited).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(
            status.success(),
            "kill -{name} {} failed ({status}); log:\n{}",
            self.pid(),
            self.log()
        );
    }

    /// The exit status if the broker has exited (e.g. crashed), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.guard.child_mut().try_wait().expect("mosquitto status can be queried")
    }

    /// Sends SIGHUP and waits until the broker logs "Reloading config." (the reload then runs:
    /// wait for the plugin's own log lines to know it finished).
    pub fn reload(&self) {
        let mark = self.log_mark();
        self.signal("HUP");
        assert!(
            self.wait_for_log_since(mark, RELOAD_MARKER, START_TIMEOUT),
            "mosquitto did not log {RELOAD_MARKER:?} after SIGHUP; log:\n{}",
            self.log()
        );
    }

    /// Sends SIGTERM, waits for the exit (so plugin cleanup runs and logs) and returns the
    /// complete log. Panics with the log if the broker does not exit within [`STOP_TIMEOUT`].
    pub fn stop(self) -> String {
        self.stop_with_status().1
    }

    /// Like [`stop`](Self::stop), also returning the exit status (also if the broker had
    /// already exited).
    pub fn stop_with_status(mut self) -> (ExitStatus, String) {
        if self.exited().is_none() {
            self.signal("TERM");
        }
        if !self.log.wait_until(STOP_TIMEOUT, |state| state.open == 0) {
            panic!(
                "mosquitto did not exit within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            );
        }
        let status = self.guard.child_mut().wait().expect("mosquitto exit status");
        (status, self.log())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listener_ports() {
        let config = "listener 1234 127.0.0.1\n  listener 0 /tmp/sock\nport 99\n# listener 5\n";
        assert_eq!(listener_ports(config), vec![1234, 99]);
    }
}
