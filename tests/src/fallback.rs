//! The fallback broker (`fallback-broker/`) for end-to-end tests, started from a TOML config the
//! test writes, like [`crate::mosquitto`] does for Mosquitto.
//!
//! Readiness is the broker's "running on" log line plus every `bind = "127.0.0.1:PORT"` of the
//! config accepting TCP; no fixed sleeps. Output (stderr and stdout) is captured into a shared
//! buffer; `FALLBACK_E2E_ECHO=1` also echoes it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp};
use crate::mosquitto::Ports;
use crate::process_log::ProcessLog;
use crate::scenarios::{BrokerUnderTest, Launcher, Setup, WillCheck};
use crate::{ProcessGuard, free_port};

/// How long the broker may take to start listening (or to exit, for bad-config tests).
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Part of the line the broker logs once every listener is bound.
const RUNNING_MARKER: &str = " running on ";
/// Part of the line the broker logs when it has handled SIGHUP.
const RELOAD_MARKER: &str = "reload: token cache flushed";

/// The broker executable: `$FALLBACK_BROKER_BIN`, else the one cargo built (see
/// [`built_artifact`](crate::built_artifact)).
pub fn fallback_binary() -> PathBuf {
    std::env::var_os("FALLBACK_BROKER_BIN")
        .map_or_else(|| crate::built_artifact("fallback-broker", "fallback-broker"), PathBuf::from)
}

/// Runs the broker binary with `args` (e.g. `generate-config`) to completion.
pub fn run_cli(args: &[&str]) -> Output {
    Command::new(fallback_binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run fallback-broker: {e}"))
}

/// The `bind = "127.0.0.1:PORT"` ports of a config.
fn bound_ports(config: &str) -> Vec<u16> {
    config
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "bind").then_some(())?;
            value.trim().trim_matches('"').rsplit_once(':')?.1.parse().ok()
        })
        .filter(|port| *port != 0)
        .collect()
}

/// A config being prepared: a temp dir for its files and two allocated ports.
#[derive(Debug)]
pub struct FallbackConfig {
    dir: TempDir,
    ports: Ports,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl FallbackConfig {
    /// A new temp dir and two free ports.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fallback-e2e-")
            .tempdir()
            .expect("temp dir for the broker config");
        let main = free_port();
        let mut second = free_port();
        while second == main {
            second = free_port();
        }
        Self { dir, ports: Ports { main, second } }
    }

    /// The temp dir (relative paths in the config are relative to it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The allocated ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Writes `<dir>/<name>` and returns its path.
    pub fn write_file(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir().join(name);
        std::fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Writes `<dir>/passwd` with `mosquitto_passwd` (see [`crate::mosquitto::password_file`]).
    pub fn password_file(&self, users: &[(&str, &str)]) -> PathBuf {
        crate::mosquitto::password_file(self.dir(), users)
    }

    fn launch(self, body: impl FnOnce(&Ports) -> String) -> FallbackBroker {
        let config_text = body(&self.ports);
        let config_path = self.dir().join("fallback.toml");
        std::fs::write(&config_path, &config_text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let mut command = Command::new(fallback_binary());
        command
            .arg("--config")
            .arg(&config_path)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ProcessGuard::spawn("fallback-broker", &mut command);
        let echo =
            std::env::var_os("FALLBACK_E2E_ECHO").map(|_| format!("[fallback {}] ", guard.pid()));
        let log = Arc::new(ProcessLog::default());
        let stderr = guard.child_mut().stderr.take().expect("stderr is piped");
        let stdout = guard.take_stdout().expect("stdout is piped");
        log.capture(stderr, echo.clone());
        log.capture(stdout, echo);
        FallbackBroker { guard, log, ports: self.ports, config_text, dir: self.dir }
    }

    /// Writes `body(&ports)` as the config, starts the broker and waits until it is running
    /// and every bound port accepts TCP. Panics with the log if it exits or is not ready.
    pub fn start(self, body: impl FnOnce(&Ports) -> String) -> FallbackBroker {
        let mut broker = self.launch(body);
        broker.wait_ready(Instant::now() + START_TIMEOUT);
        broker
    }

    /// Starts the broker expecting it to exit (bad config, port in use): its status and log.
    pub fn start_expect_exit(self, body: impl FnOnce(&Ports) -> String) -> (ExitStatus, String) {
        let mut broker = self.launch(body);
        if !broker.log.wait_until(START_TIMEOUT, |state| state.open == 0) {
            panic!("fallback-broker did not exit within {START_TIMEOUT:?}; log:\n{}", broker.log());
        }
        let status = broker.guard.child_mut().wait().expect("exit status");
        (status, broker.log())
    }
}

/// A running fallback broker, killed when dropped (its temp dir is removed after that).
#[derive(Debug)]
pub struct FallbackBroker {
    // Field order matters: the process is killed before the dir is removed.
    guard: ProcessGuard,
    log: Arc<ProcessLog>,
    ports: Ports,
    config_text: String,
    dir: TempDir,
}

impl FallbackBroker {
    /// The allocated ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The main port.
    pub fn port(&self) -> u16 {
        self.ports.main
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Waits until the broker is running and every bound port accepts TCP. Panics with the
    /// log if it exits or is not ready by `deadline`.
    fn wait_ready(&mut self, deadline: Instant) {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let running = self
            .log
            .wait_until(timeout, |state| state.open == 0 || state.text.contains(RUNNING_MARKER));
        if !running || !self.log().contains(RUNNING_MARKER) {
            self.log.wait_until(Duration::from_secs(2), |state| state.open == 0);
            let status = self.guard.child_mut().try_wait().ok().flatten();
            panic!(
                "fallback-broker did not start (exit status: {status:?}); config:\n{}\nlog:\n{}",
                self.config_text,
                self.log()
            );
        }
        for port in bound_ports(&self.config_text) {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "fallback-broker does not accept TCP on port {port}; log:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The temp dir holding the config and the test's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// A position in the log, for [`wait_for_log_since`](Self::wait_for_log_since).
    pub fn log_mark(&self) -> usize {
        self.log.mark()
    }

    /// Waits up to `timeout` for `needle` in the log after `mark`; whether it appeared.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> bool {
        self.log.wait_until(timeout, |state| {
            state.text.get(mark..).is_some_and(|text| text.contains(needle))
        })
    }

    /// Panics with the log if `needle` does not appear within `timeout`.
    pub fn expect_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_for_log_since(0, needle, timeout),
            "{needle:?} not in the fallback-broker log within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// The exit status if the broker has exited (e.g. crashed), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.guard.child_mut().try_wait().expect("fallback-broker status can be queried")
    }

    /// Sends a signal by name (`"HUP"`, `"TERM"`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{name} failed; log:\n{}", self.log());
    }

    /// SIGHUP, then waits until the broker logs that its cache is flushed.
    pub fn reload(&self) {
        let mark = self.log_mark();
        self.signal("HUP");
        assert!(
            self.wait_for_log_since(mark, RELOAD_MARKER, START_TIMEOUT),
            "no {RELOAD_MARKER:?} after SIGHUP; log:\n{}",
            self.log()
        );
    }

    /// Stops the broker with SIGTERM and starts it again with the same config, directory and
    /// ports; returns the new process and the old one's log.
    pub fn restart(self) -> (FallbackBroker, String) {
        self.signal("TERM");
        if !self.log.wait_until(STOP_TIMEOUT, |state| state.open == 0) {
            panic!("fallback-broker did not exit within {STOP_TIMEOUT:?}; log:\n{}", self.log());
        }
        let old_log = self.log();
        let Self { guard, ports, config_text, dir, .. } = self;
        drop(guard);
        let broker = FallbackConfig { dir, ports }.start(|_| config_text);
        (broker, old_log)
    }

    /// SIGTERM, then waits for the exit: status and complete log.
    pub fn stop_with_status(mut self) -> (ExitStatus, String) {
        if self.guard.child_mut().try_wait().ok().flatten().is_none() {
            self.signal("TERM");
        }
        if !self.log.wait_until(STOP_TIMEOUT, |state| state.open == 0) {
            panic!("fallback-broker did not exit within {STOP_TIMEOUT:?}; log:\n{}", self.log());
        }
        let status = self.guard.child_mut().wait().expect("exit status");
        (status, self.log())
    }
}

/// Starts a `size`-node cluster on loopback, all nodes at once as an orchestrator would, and
/// waits until every node serves MQTT. Node `i` (id `i + 1`) gets the file `body(ports)` plus
/// its `[cluster]` section; each node's gRPC service is on its second port.
pub fn start_cluster(size: usize, body: impl Fn(&Ports) -> String) -> Vec<FallbackBroker> {
    let mut configs: Vec<FallbackConfig> = Vec::with_capacity(size);
    let mut taken = std::collections::HashSet::new();
    while configs.len() < size {
        let config = FallbackConfig::new();
        if taken.insert(config.ports.main) && taken.insert(config.ports.second) {
            configs.push(config);
        }
    }
    let raft_ports: Vec<u16> =
        std::iter::repeat_with(free_port).filter(|port| taken.insert(*port)).take(size).collect();
    let nodes: String = configs
        .iter()
        .zip(&raft_ports)
        .enumerate()
        .map(|(index, (config, raft))| {
            format!(
                "    {{ id = {}, grpc = \"127.0.0.1:{}\", raft = \"127.0.0.1:{raft}\" }},\n",
                index + 1,
                config.ports.second
            )
        })
        .collect();
    let mut brokers: Vec<FallbackBroker> = configs
        .into_iter()
        .enumerate()
        .map(|(index, config)| {
            config.launch(|ports| {
                format!(
                    "{}\n[cluster]\nnode_id = {}\nnodes = [\n{nodes}]\n",
                    body(ports),
                    index + 1
                )
            })
        })
        .collect();
    // A node waits for the founder's raft service, then joins: allow for both.
    let deadline = Instant::now() + START_TIMEOUT * 2;
    for broker in &mut brokers {
        broker.wait_ready(deadline);
    }
    brokers
}

/// A TOML basic string.
pub fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[auth]` lines for introspection at `idp` as the broker client, 1 s HTTP timeout.
pub fn auth_lines(idp: &Idp) -> String {
    format!(
        "introspection_url = {}\nclient_id = {}\nclient_secret = {}\nhttp_timeout_ms = 1000\n",
        toml_string(&idp.introspection_url()),
        toml_string(BROKER_CLIENT_ID),
        toml_string(BROKER_CLIENT_SECRET),
    )
}

/// The fallback broker as a [`Launcher`] of the shared scenarios. `extra_auth` lines are added
/// to `[auth]` (e.g. `revalidate_interval = 1`).
#[derive(Debug, Default)]
pub struct FallbackLauncher {
    /// Extra `[auth]` lines.
    pub extra_auth: String,
}

impl Launcher for FallbackLauncher {
    fn start(&self, idp: &Idp, setup: &Setup<'_>) -> Box<dyn BrokerUnderTest> {
        let config = FallbackConfig::new();
        let mut auth = auth_lines(idp);
        auth.push_str(&self.extra_auth);
        let mut metrics = String::new();
        for (name, value) in &setup.options {
            if *name == "stats_interval" {
                metrics = format!("[metrics]\nsys_interval = {value}\n");
            } else {
                auth.push_str(&format!("{name} = {}\n", toml_string(value)));
            }
        }
        let mut users = String::new();
        if !setup.users.is_empty() {
            let pairs: Vec<(&str, &str)> =
                setup.users.iter().map(|u| (u.name, u.password)).collect();
            let passwd = config.password_file(&pairs);
            users = format!("[users]\nfile = {}\n", toml_string(&passwd.to_string_lossy()));
            for user in &setup.users {
                let list = |filters: &[&str]| {
                    filters.iter().map(|f| toml_string(f)).collect::<Vec<_>>().join(", ")
                };
                users.push_str(&format!(
                    "[[users.grants]]\nusername = {}\nread = [{}]\nwrite = [{}]\n",
                    toml_string(user.name),
                    list(user.read),
                    list(user.write)
                ));
            }
        }
        let broker = config.start(|ports| {
            format!(
                "[auth]\n{auth}\n[[listener]]\nbind = \"127.0.0.1:{}\"\n\n[log]\nlevel = \"debug\"\n\n{metrics}{users}",
                ports.main
            )
        });
        Box::new(broker)
    }
}

impl BrokerUnderTest for FallbackBroker {
    fn name(&self) -> &str {
        "fallback-broker"
    }

    fn port(&self) -> u16 {
        self.ports.main
    }

    fn flush_cache(&self) {
        self.reload();
    }

    fn log(&self) -> String {
        FallbackBroker::log(self)
    }

    fn expect_log(&self, needle: &str, timeout: Duration) {
        FallbackBroker::expect_log(self, needle, timeout);
    }

    /// Our expiry kick asks for 0x87 "token expired" (Mosquitto's own kick is 0x98).
    fn expiry_disconnect_reason(&self) -> Option<u8> {
        Some(crate::mqtt::reason::NOT_AUTHORIZED)
    }

    fn will_check(&self) -> WillCheck {
        WillCheck::AtConnect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_bound_ports() {
        let config = "[[listener]]\nbind = \"127.0.0.1:1883\"\n bind=\"0.0.0.0:0\"\n# bind x\n";
        assert_eq!(bound_ports(config), vec![1883]);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
