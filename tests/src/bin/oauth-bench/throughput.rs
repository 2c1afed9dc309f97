//! A. QoS 0 throughput, one publisher to one subscriber, as a ratio to Mosquitto without auth.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::fallback::{FallbackBroker, FallbackConfig, auth_lines};
use mosquitto_oauth_e2e::idp::Idp;
use mosquitto_oauth_e2e::mosquitto::Mosquitto;
use mosquitto_oauth_e2e::mqtt::{Protocol, encode_publish, encode_subscribe};
use mosquitto_oauth_e2e::{ProcessGuard, built_artifact, free_port, wait_for_port};

use super::tokens::{Signer, fixture_jwks};
use super::{
    COMMON, config, cpu_time, key_file_plugin_lines, median, plugin_lines, range, raw_connection,
    thread_count,
};

/// Mosquitto's bundled dynamic-security plugin: `$MOSQUITTO_DYNSEC_PLUGIN`, or Debian's path.
fn dynsec_plugin() -> PathBuf {
    std::env::var_os("MOSQUITTO_DYNSEC_PLUGIN").map_or_else(
        || PathBuf::from("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
        PathBuf::from,
    )
}

/// `mosquitto_ctrl`: `$MOSQUITTO_CTRL_BIN`, or `/usr/bin/mosquitto_ctrl`.
fn mosquitto_ctrl() -> PathBuf {
    std::env::var_os("MOSQUITTO_CTRL_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/mosquitto_ctrl"), PathBuf::from)
}

fn run_ctrl(args: &[&str]) {
    let output = Command::new(mosquitto_ctrl())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run mosquitto_ctrl: {e}"));
    assert!(
        output.status.success(),
        "mosquitto_ctrl {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const DYNSEC_ADMIN_PASSWORD: &str = "bench-admin-pass";

/// A broker with the dynamic-security plugin and client `bench` / `bench-pass` whose role allows
/// publishing, subscribing and receiving on `bench/#`; `None` (with a note) if the plugin or
/// `mosquitto_ctrl` is not installed.
fn dynsec_broker(binary: &Option<PathBuf>) -> Option<Mosquitto> {
    let plugin = dynsec_plugin();
    if !plugin.is_file() || !mosquitto_ctrl().is_file() {
        eprintln!(
            "{} or {} missing: dynamic-security row skipped",
            plugin.display(),
            mosquitto_ctrl().display()
        );
        return None;
    }
    let files = config(binary);
    let state = files.dir().join("dynamic-security.json");
    run_ctrl(&["dynsec", "init", path_str(&state), "admin", DYNSEC_ADMIN_PASSWORD]);
    let broker = files.start(|p| {
        format!(
            "{COMMON}listener {} 127.0.0.1\nallow_anonymous false\nplugin {}\nplugin_opt_config_file {}\n",
            p.main,
            plugin.display(),
            state.display()
        )
    });
    let port = broker.port().to_string();
    // The default ACL access of a fresh dynsec file denies publishing and subscribing but allows
    // receiving; the receive rule is added anyway so that every delivery is matched against the
    // role's list like the plugin's read check.
    let commands: [&[&str]; 6] = [
        &["createClient", "bench", "-p", "bench-pass"],
        &["createRole", "bench"],
        &["addRoleACL", "bench", "publishClientSend", "bench/#", "allow"],
        &["addRoleACL", "bench", "publishClientReceive", "bench/#", "allow"],
        &["addRoleACL", "bench", "subscribePattern", "bench/#", "allow"],
        &["addClientRole", "bench", "bench"],
    ];
    for command in commands {
        let mut args = vec!["-h", "127.0.0.1", "-p", &port, "-u", "admin", "-P"];
        args.extend([DYNSEC_ADMIN_PASSWORD, "dynsec"]);
        args.extend_from_slice(command);
        run_ctrl(&args);
    }
    Some(broker)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Reads MQTT packets, counting PUBLISHes, until `expected` arrived or `timeout` passed.
fn count_publishes(stream: TcpStream, expected: u64, timeout: Duration) -> (u64, Instant) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + timeout;
    let mut reader = BufReader::with_capacity(1 << 16, stream);
    let mut received = 0;
    let mut last = Instant::now();
    let mut byte = [0u8; 1];
    while received < expected && Instant::now() < deadline {
        if reader.read_exact(&mut byte).is_err() {
            continue;
        }
        let kind = byte[0] >> 4;
        let (mut length, mut shift) = (0usize, 0);
        loop {
            reader.read_exact(&mut byte).unwrap();
            length |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        if kind == 3 {
            received += 1;
            last = Instant::now();
        }
    }
    (received, last)
}

/// One round: messages/s from the first publish to the last delivery (0 if messages were lost).
pub(super) fn one_round(port: u16, credentials: Option<(&str, &str)>, messages: u64) -> (f64, u64) {
    one_round_between(port, port, credentials, messages)
}

/// [`one_round`] with the publisher and the subscriber on brokers of their own (cluster nodes).
pub(super) fn one_round_between(
    publisher_port: u16,
    subscriber_port: u16,
    credentials: Option<(&str, &str)>,
    messages: u64,
) -> (f64, u64) {
    let subscriber = raw_connection(subscriber_port, "bench-sub", credentials);
    (&subscriber).write_all(&encode_subscribe(Protocol::V311, 1, &[("bench/#", 0)])).unwrap();
    let mut suback = [0u8; 5];
    (&subscriber).read_exact(&mut suback).unwrap();
    assert_eq!(suback[4], 0, "subscription refused");
    let publisher = raw_connection(publisher_port, "bench-pub", credentials);
    if publisher_port != subscriber_port {
        await_route(&publisher, &subscriber, "bench/t");
    }
    let packet = encode_publish(Protocol::V311, "bench/t", &[0x42; 64], 0, false, None);
    let counter =
        std::thread::spawn(move || count_publishes(subscriber, messages, Duration::from_secs(60)));
    let started = Instant::now();
    let mut writer = BufWriter::with_capacity(1 << 16, &publisher);
    for _ in 0..messages {
        writer.write_all(&packet).unwrap();
    }
    writer.flush().unwrap();
    let (received, last) = counter.join().unwrap();
    let rate = received as f64 / last.duration_since(started).as_secs_f64();
    (rate, messages - received)
}

/// Publishes to `topic` every 50 ms until `subscriber` receives a message (a cluster applies a
/// new subscription to the other nodes' routing tables a moment after SUBACK), then reads
/// until it is quiet for 300 ms.
pub(super) fn await_route(publisher: &TcpStream, subscriber: &TcpStream, topic: &str) {
    let probe = encode_publish(Protocol::V311, topic, b"probe", 0, false, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sink = [0u8; 4096];
    subscriber.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    loop {
        (&*publisher).write_all(&probe).unwrap();
        if matches!((&*subscriber).read(&mut sink), Ok(n) if n > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the subscription never reached the publisher's node");
    }
    subscriber.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    while matches!((&*subscriber).read(&mut sink), Ok(n) if n > 0) {}
    subscriber.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
}

/// The fallback broker with the same authorization server and token rules as the plugin
/// (logging at `info`: one line per connection, none per message, like the Mosquitto rows).
pub(super) fn fallback_broker(idp: &Idp) -> FallbackBroker {
    FallbackConfig::new().start(|p| {
        format!(
            "[auth]\n{}[[listener]]\ntype = \"tcp\"\nbind = \"127.0.0.1:{}\"\n",
            auth_lines(idp),
            p.main
        )
    })
}

/// The fallback broker's engine without our hooks (benchmark F2's reference; built with
/// `cargo build --release -p fallback-broker --example engine_without_auth`).
pub(super) fn engine_without_auth() -> (ProcessGuard, u16) {
    let binary = built_artifact(
        "examples/engine_without_auth",
        "fallback-broker --example engine_without_auth",
    );
    let port = free_port();
    let guard = ProcessGuard::spawn(
        "engine_without_auth",
        Command::new(binary).arg(port.to_string()).stdout(Stdio::null()).stderr(Stdio::null()),
    );
    wait_for_port(port, Duration::from_secs(10));
    (guard, port)
}

/// On a machine with two or more CPUs, runs these brokers on CPU 0 and this load generator
/// (publisher and subscriber) on CPU 1: with everyone free to migrate, rounds of one and the
/// same broker differ by ±20 %, pinned by about half that.
fn pin_to_cpus(setups: &[Setup<'_>]) {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return;
    }
    for setup in setups {
        pin(setup.pid, "0");
    }
    pin(std::process::id(), "1");
}

/// Pins every thread of process `pid` to the CPUs in `cpu` (a `taskset` CPU list); threads
/// and processes it starts later inherit that.
pub(super) fn pin(pid: u32, cpu: &str) {
    let pinned = Command::new("taskset")
        .args(["--all-tasks", "--pid", "--cpu-list", cpu, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pinned {
        eprintln!("taskset could not pin pid {pid} to CPU {cpu}: rounds will vary more");
    }
}

/// One broker configuration measured by the throughput benchmark.
struct Setup<'a> {
    name: &'a str,
    port: u16,
    /// The broker process, whose CPU time per round is measured.
    pid: u32,
    credentials: Option<(&'a str, &'a str)>,
    /// Mosquitto runs one thread of its own: a second one is the plugin's.
    single_threaded_host: bool,
}

/// `with_fallback`: also measure the fallback broker (the binary must be built) and print its
/// rate relative to Mosquitto with the plugin.
pub(super) fn run(messages: u64, rounds: u64, binary: Option<PathBuf>, with_fallback: bool) {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:write:bench/#", "mqtt:read:bench/#"]);
    let plugin = plugin_lines(&idp, "");
    let with_plugin = config(&binary).start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
    let files = config(&binary);
    let jwks = files.write_file("jwks.json", fixture_jwks());
    let key_file_plugin = key_file_plugin_lines(&jwks, "");
    let with_key_file = files.start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{key_file_plugin}", p.main)
    });
    let signed = Signer::fixture().token_for("device-1", "mqtt:write:bench/# mqtt:read:bench/#");
    let no_auth = config(&binary)
        .start(|p| format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous true\n", p.main));
    let files = config(&binary);
    let passwd = files.password_file(&[("bench", "bench-pass")]);
    let acl = files.write_file("acl", "user bench\ntopic readwrite bench/#\n");
    let with_files = files.start(|p| {
        format!(
            "{COMMON}listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
            p.main,
            passwd.display(),
            acl.display()
        )
    });
    let with_dynsec = dynsec_broker(&binary);
    let fallback = with_fallback.then(|| fallback_broker(&idp));
    let engine = with_fallback.then(engine_without_auth);
    let device = Some(("device-1", token.as_str()));
    let mut setups = vec![
        Setup {
            name: "no auth",
            port: no_auth.port(),
            pid: no_auth.pid(),
            credentials: None,
            single_threaded_host: true,
        },
        Setup {
            name: "oauth plugin, introspection (every publish and delivery checked)",
            port: with_plugin.port(),
            pid: with_plugin.pid(),
            credentials: device,
            single_threaded_host: true,
        },
        Setup {
            name: "oauth plugin, JWT keys from a file (no background thread)",
            port: with_key_file.port(),
            pid: with_key_file.pid(),
            credentials: Some(("device-1", signed.as_str())),
            single_threaded_host: true,
        },
        Setup {
            name: "password_file + acl_file",
            port: with_files.port(),
            pid: with_files.pid(),
            credentials: Some(("bench", "bench-pass")),
            single_threaded_host: true,
        },
    ];
    if let Some(broker) = &with_dynsec {
        setups.push(Setup {
            name: "dynamic-security plugin",
            port: broker.port(),
            pid: broker.pid(),
            credentials: Some(("bench", "bench-pass")),
            single_threaded_host: true,
        });
    }
    // Mosquitto runs one thread; the fallback broker, with as many as there are CPUs, is left
    // free to use them.
    pin_to_cpus(&setups);
    if let (Some(broker), Some((engine, engine_port))) = (&fallback, &engine) {
        setups.push(Setup {
            name: "fallback broker's engine without auth (rmqtt alone)",
            port: *engine_port,
            pid: engine.pid(),
            credentials: device,
            single_threaded_host: false,
        });
        setups.push(Setup {
            name: "fallback broker (rmqtt + the same core)",
            port: broker.port(),
            pid: broker.pid(),
            credentials: device,
            single_threaded_host: false,
        });
    }
    let mut rates = vec![Vec::new(); setups.len()];
    let mut cpu_per_message = vec![Vec::new(); setups.len()];
    let mut user_per_message = vec![Vec::new(); setups.len()];
    let mut lost = vec![0u64; setups.len()];
    // A live second thread makes each of the broker's system calls dearer (ARCHITECTURE.md,
    // "Cost per message"); the plugin's threads live only while it has network work.
    let mut threaded_rounds = vec![0u64; setups.len()];
    // One unmeasured round each first: a broker's first round also grows its heap.
    for setup in &setups {
        one_round(setup.port, setup.credentials, messages);
    }
    // Each round starts with the next setup, so none is always measured first.
    for round in 0..rounds as usize {
        for offset in 0..setups.len() {
            let index = (round + offset) % setups.len();
            let setup = &setups[index];
            let threads_before = thread_count(setup.pid);
            let before = cpu_time(setup.pid);
            let (rate, missing) = one_round(setup.port, setup.credentials, messages);
            let after = cpu_time(setup.pid);
            if threads_before.max(thread_count(setup.pid)) > 1 {
                threaded_rounds[index] += 1;
            }
            let micros_per_message = |spent: Duration| spent.as_secs_f64() * 1e6 / messages as f64;
            rates[index].push(rate);
            cpu_per_message[index].push(micros_per_message(after.total() - before.total()));
            user_per_message[index].push(micros_per_message(after.user - before.user));
            lost[index] += missing;
        }
    }
    // Each setup's rate relative to no auth's rate of the same cycle: the machine's speed
    // drifts between cycles (a whole run moves by ±10 % on a shared VM), which a ratio of
    // medians over the run would fold in, and a ratio within the cycle mostly cancels.
    let mut paired: Vec<Vec<f64>> = rates
        .iter()
        .map(|own| own.iter().zip(&rates[0]).map(|(rate, base)| rate / base).collect())
        .collect();
    let ratio_range: Vec<(f64, f64)> = paired.iter().map(|ratios| range(ratios)).collect();
    let ratios: Vec<f64> = paired.iter_mut().map(|ratios| median(ratios)).collect();
    let medians: Vec<f64> = rates.iter_mut().map(|rates| median(rates)).collect();
    let cpu: Vec<f64> = cpu_per_message.iter_mut().map(|cpu| median(cpu)).collect();
    let user: Vec<f64> = user_per_message.iter_mut().map(|user| median(user)).collect();
    // The kernel's share of the broker's CPU time swings with how TCP writes and wake-ups batch
    // up; the user-space share is where an auth plugin's own work shows, and the steadiest.
    println!(
        "| setup | msgs/s (median of {rounds}) | ratio to no auth (median of the rounds' ratios) | range of the rounds' ratios | broker CPU per message | CPU ratio to no auth | of which user space | rounds with a plugin thread alive | messages lost |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (index, setup) in setups.iter().enumerate() {
        let (rate, name) = (medians[index], setup.name);
        let threaded = if setup.single_threaded_host {
            format!("{} of {rounds}", threaded_rounds[index])
        } else {
            "(multi-threaded broker)".to_owned()
        };
        let (lowest, highest) = ratio_range[index];
        println!(
            "| {name} | {rate:.0} | {:.3} | {lowest:.2}–{highest:.2} | {:.2} µs | {:.3} | {:.2} µs | {threaded} | {} |",
            ratios[index],
            cpu[index],
            cpu[index] / cpu[0],
            user[index],
            lost[index]
        );
    }
    if fallback.is_some() {
        let (with_auth, without) = (setups.len() - 1, setups.len() - 2);
        let ratio = medians[with_auth] / medians[1];
        println!("\nfallback broker / Mosquitto with the oauth plugin: {ratio:.3}");
        // In the same way as the ratios to no auth above: per cycle, then the median. Both
        // brokers run unpinned here, so this swings; F2 proper is `oauth-bench f2`.
        let mut f2: Vec<f64> =
            rates[with_auth].iter().zip(&rates[without]).map(|(auth, none)| auth / none).collect();
        let cpu_ratio = cpu[with_auth] / cpu[without];
        println!(
            "fallback broker / its engine without auth, both unpinned: {:.3} (broker CPU per message ratio {cpu_ratio:.3}; F2: oauth-bench f2)",
            median(&mut f2)
        );
    }
}
