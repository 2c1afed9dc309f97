//! Load generator for the benchmark suite (`benches/run.sh`, `benches/soak.sh`). Not a test: it
//! prints figures.
//!
//! - `throughput` (A): QoS 0, one publisher to one subscriber, every publish and delivery through
//!   the ACL check; messages/s of Mosquitto with the plugin, with `password_file` + `acl_file`,
//!   with the bundled dynamic-security plugin, and without auth (with `--fallback`, also the
//!   fallback broker), in alternating rounds of one run; each setup's median rate, and the
//!   median of its rounds' ratios to the no-auth round of the same cycle.
//! - `connect-rate` (B): CONNECT, CONNACK, DISCONNECT one at a time: no auth, one token reused,
//!   distinct JWTs, distinct opaque tokens; with the calls counted at the authorization server.
//! - `storm` (C): round-trip latency of an already-connected client (an open-loop probe
//!   publishing to its own subscription every 1 ms) while many clients connect with cold tokens
//!   against an authorization server answering after a delay; a refused client retries after
//!   500 ms.
//! - `memory` (D): broker RSS per cached token and after many connect/disconnect cycles.
//! - `soak`: many clients with short-lived tokens renewed by reconnecting, publishing QoS 1 to
//!   themselves for a given time; loss, refusals, expiry kicks and RSS over time.
//! - `scale` (E): N idle token clients (`--clients 1000,5000,15000`) on Mosquitto with the
//!   plugin and as many on Mosquitto without auth: RSS per client, connect time, throughput
//!   with N idle, a revalidation round's length and request rate, a probe's round trips during
//!   it; with `--fallback`, the fallback broker's RSS per client. The clients are held by child
//!   processes (`oauth-bench hold`).
//! - `f2` (F2): the fallback broker and its engine without auth, each on one CPU with the load
//!   generator on the other, in alternating rounds: rate and CPU per message ratios.
//! - `cluster` (F, cluster rows): the fallback broker alone and as a 3-node cluster: QoS 0
//!   throughput and latency on one node and across nodes, connect rate per node.
//! - `thread-cost`: what a plugin's threads (one that ended, one alive) add to the broker
//!   thread's allocations and system calls.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

mod cluster;
mod connect_rate;
mod f2;
mod memory;
mod scale;
mod soak;
mod storm;
mod thread_cost;
mod throughput;
mod tokens;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use mosquitto_oauth_e2e::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp};
use mosquitto_oauth_e2e::mosquitto::{MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{Protocol, RawConnect};

fn usage() -> ! {
    eprintln!(
        "usage: oauth-bench throughput [--messages N] [--rounds N] [--fallback] [--mosquitto BIN]\n\
         \x20      oauth-bench connect-rate [--connects N] [--rounds N] [--mosquitto BIN]\n\
         \x20      oauth-bench f2 [--messages N] [--rounds N]\n\
         \x20      oauth-bench cluster [--messages N] [--rounds N] [--connects N]\n\
         \x20      oauth-bench storm [--clients N] [--idp-delay-ms N] [--probe-secs N] [--login-wait-budget-ms N] [--mosquitto BIN]\n\
         \x20      oauth-bench memory [--tokens N] [--cycles N] [--workers N] [--settle-secs N] [--mosquitto BIN]\n\
         \x20      oauth-bench soak [--clients N] [--duration-secs N] [--token-ttl N] [--publish-ms N]\n\
         \x20                       [--renew-percent N] [--ramp-secs N] [--report-secs N] [--mosquitto BIN]\n\
         \x20      oauth-bench scale [--clients N,N,..] [--messages N] [--rounds N] [--interval-secs N] [--max-rps N]\n\
         \x20                        [--revocation-clients N] [--fallback] [--mosquitto BIN]\n\
         \x20      oauth-bench thread-cost [--allocations N] [--syscall-pairs N]"
    );
    std::process::exit(2)
}

/// The value after the last `name` in `args` (so wrapper scripts can put defaults first).
fn option(args: &[String], name: &str) -> Option<String> {
    args.iter().rposition(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    option(args, name).map(|v| v.parse().unwrap_or_else(|_| usage())).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let binary = option(&args, "--mosquitto").map(PathBuf::from);
    match args.first().map(String::as_str) {
        Some("throughput") => throughput::run(
            number(&args, "--messages", 100_000),
            number(&args, "--rounds", 3),
            binary,
            args.iter().any(|a| a == "--fallback"),
        ),
        Some("f2") => f2::run(number(&args, "--messages", 500_000), number(&args, "--rounds", 11)),
        Some("cluster") => cluster::run(
            number(&args, "--messages", 100_000),
            number(&args, "--rounds", 3),
            number(&args, "--connects", 1000),
        ),
        Some("connect-rate") => connect_rate::run(
            number(&args, "--connects", 2000),
            number(&args, "--rounds", 3),
            binary,
        ),
        Some("storm") => storm::run(
            number(&args, "--clients", 200),
            number(&args, "--idp-delay-ms", 200),
            number(&args, "--probe-secs", 0),
            option(&args, "--login-wait-budget-ms")
                .map(|ms| ms.parse().unwrap_or_else(|_| usage())),
            binary,
        ),
        Some("memory") => memory::run(&memory::Options {
            tokens: number(&args, "--tokens", 100_000),
            cycles: number(&args, "--cycles", 50_000),
            workers: number(&args, "--workers", 4).max(1),
            settle_secs: number(&args, "--settle-secs", 65),
            binary,
        }),
        Some("soak") => soak::run(&soak::Options {
            clients: number(&args, "--clients", 1000),
            duration: Duration::from_secs(number(&args, "--duration-secs", 600)),
            token_ttl: number(&args, "--token-ttl", 20).max(4),
            renew_percent: number(&args, "--renew-percent", 60),
            publish_every: Duration::from_millis(number(&args, "--publish-ms", 1000).max(1)),
            ramp: Duration::from_secs(number(&args, "--ramp-secs", 10)),
            report_every: Duration::from_secs(number(&args, "--report-secs", 10).max(1)),
            binary,
        }),
        Some("scale") => scale::run(&scale::Options {
            sizes: option(&args, "--clients")
                .unwrap_or_else(|| "1000,5000,15000".to_owned())
                .split(',')
                .map(|n| n.trim().parse().unwrap_or_else(|_| usage()))
                .collect(),
            messages: number(&args, "--messages", 100_000),
            rounds: number(&args, "--rounds", 3).max(1),
            interval_secs: number(&args, "--interval-secs", 20).max(1),
            max_rps: number(&args, "--max-rps", 500).max(2),
            revocation_clients: option(&args, "--revocation-clients")
                .map(|n| n.parse().unwrap_or_else(|_| usage())),
            fallback: args.iter().any(|a| a == "--fallback"),
            binary,
        }),
        Some("hold") => scale::hold(
            args.get(1).and_then(|port| port.parse().ok()).unwrap_or_else(|| usage()),
            std::path::Path::new(args.get(2).unwrap_or_else(|| usage())),
        ),
        Some("thread-cost") => thread_cost::run(
            u32::try_from(number(&args, "--allocations", 10_000_000)).unwrap_or_else(|_| usage()),
            u32::try_from(number(&args, "--syscall-pairs", 200_000)).unwrap_or_else(|_| usage()),
        ),
        _ => usage(),
    }
}

/// Mosquitto log types for benchmark brokers: everything but `debug`, which writes a line per
/// packet and would be measured along with the broker.
const BENCH_LOG_TYPES: &str = "error warning notice information";

fn config(binary: &Option<PathBuf>) -> MosquittoConfig {
    // `OAUTH_BENCH_LOG_TYPES=all` (with `MOSQUITTO_E2E_ECHO=1`) to look into a run.
    let types = std::env::var("OAUTH_BENCH_LOG_TYPES").unwrap_or_else(|_| BENCH_LOG_TYPES.into());
    let config = MosquittoConfig::new().log_types(&types);
    match binary {
        Some(path) => config.binary(path),
        None => config,
    }
}

fn plugin_lines(idp: &Idp, extra: &str) -> String {
    format!(
        "plugin {}\nplugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id {BROKER_CLIENT_ID}\n\
         plugin_opt_oauth_client_secret {BROKER_CLIENT_SECRET}\nplugin_opt_oauth_stats_interval 0\n{extra}",
        plugin_path().display(),
        idp.introspection_url()
    )
}

/// Plugin lines for JWTs checked against a local key file (the fixture keys of
/// [`tokens::Signer`]): nothing is ever asked of an authorization server.
fn key_file_plugin_lines(jwks: &std::path::Path, extra: &str) -> String {
    format!(
        "plugin {}\nplugin_opt_oauth_mode jwt\nplugin_opt_oauth_jwks_file {}\n\
         plugin_opt_oauth_issuer {}\nplugin_opt_oauth_audience {}\n\
         plugin_opt_oauth_stats_interval 0\n{extra}",
        plugin_path().display(),
        jwks.display(),
        tokens::LOCAL_ISSUER,
        tokens::LOCAL_AUDIENCE
    )
}

const COMMON: &str = "set_tcp_nodelay true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n";

/// Sends an MQTT 3.1.1 CONNECT and reads the CONNACK: the connection and its return code.
fn connect(
    port: u16,
    client_id: &str,
    credentials: Option<(&str, &str)>,
    clean: bool,
) -> (TcpStream, u8, bool) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("broker accepts TCP");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut connect = RawConnect::new(Protocol::V311, client_id);
    connect.clean = clean;
    if let Some((user, password)) = credentials {
        connect.username = Some(user.as_bytes().to_vec());
        connect.password = Some(password.as_bytes().to_vec());
    }
    (&stream).write_all(&connect.encode()).expect("CONNECT sent");
    let mut connack = [0u8; 4];
    (&stream).read_exact(&mut connack).expect("CONNACK received");
    assert_eq!(connack[0], 0x20, "{client_id}: expected a CONNACK, got {connack:?}");
    (stream, connack[3], connack[2] & 1 == 1)
}

/// A raw MQTT 3.1.1 connection for bulk traffic; panics if the broker refuses it.
fn raw_connection(port: u16, client_id: &str, credentials: Option<(&str, &str)>) -> TcpStream {
    let (stream, code, _) = connect(port, client_id, credentials, true);
    assert_eq!(code, 0, "{client_id} refused: CONNACK {code}");
    stream
}

/// One CONNECT, CONNACK, DISCONNECT cycle, complete when the broker has closed the
/// connection (so it has processed the DISCONNECT). Returns the CONNACK return code.
fn connect_cycle(port: u16, client_id: &str, credentials: Option<(&str, &str)>) -> u8 {
    let (mut stream, code, _) = connect(port, client_id, credentials, true);
    if code == 0 {
        stream.write_all(&[0xe0, 0x00]).expect("DISCONNECT sent");
    }
    let mut sink = [0u8; 64];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    code
}

/// Resident set size of process `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmRSS")
}

/// Threads of process `pid` (`Threads` of `/proc/<pid>/status`).
fn thread_count(pid: u32) -> u64 {
    status_number(pid, "Threads")
}

/// The number leading the value of `field` in `/proc/<pid>/status`.
fn status_number(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// CPU time a process has used, in user space and in the kernel.
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    user: Duration,
    system: Duration,
}

impl CpuTime {
    fn total(self) -> Duration {
        self.user + self.system
    }
}

/// CPU time process `pid` has used so far, from `/proc/<pid>/stat` (in clock ticks of 10 ms:
/// Linux reports 100 per second there on every architecture we run on).
fn cpu_time(pid: u32) -> CpuTime {
    cpu_time_from(&format!("/proc/{pid}/stat"))
}

/// CPU time of a process's main thread only (Mosquitto's broker thread, without the plugin's
/// background threads).
fn main_thread_cpu_time(pid: u32) -> CpuTime {
    cpu_time_from(&format!("/proc/{pid}/task/{pid}/stat"))
}

fn cpu_time_from(path: &str) -> CpuTime {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    // Fields after the command name (which may contain spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let mut ticks = after_name
        .split_whitespace()
        .skip(11)
        .map(|field| field.parse::<u64>().expect("utime/stime are numbers"));
    let mut next = || Duration::from_millis(ticks.next().expect("stat has utime and stime") * 10);
    CpuTime { user: next(), system: next() }
}

/// The lowest and the highest of `values`.
fn range(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Splits `0..count` into `parts` contiguous ranges of nearly equal length.
fn split_range(count: u64, parts: u64) -> Vec<std::ops::Range<u64>> {
    let parts = parts.max(1);
    (0..parts).map(|p| (count * p / parts)..(count * (p + 1) / parts)).collect()
}
