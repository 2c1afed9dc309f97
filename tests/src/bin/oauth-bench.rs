//! Load generator for the benchmark suite (`benches/run.sh`). Not a test: it prints figures.
//!
//! - `throughput`: QoS 0, one publisher to one subscriber, every publish and delivery through
//!   the ACL check; messages/s of Mosquitto with the plugin, with `password_file` + `acl_file`,
//!   and without auth, in alternating rounds of one run; the median of each and its ratio to
//!   no auth.
//! - `storm`: round-trip latency of an already-connected client (1 ms paced probe publishing to
//!   its own subscription) while many clients connect with cold tokens against an authorization
//!   server answering after a delay.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, MqttClient, Protocol, RawConnect, encode_publish, encode_subscribe,
};

fn usage() -> ! {
    eprintln!(
        "usage: oauth-bench throughput [--messages N] [--rounds N] [--mosquitto BIN]\n\
         \x20      oauth-bench storm [--clients N] [--idp-delay-ms N] [--probe-secs N] [--mosquitto BIN]"
    );
    std::process::exit(2)
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn number(args: &[String], name: &str, default: u64) -> u64 {
    option(args, name).map(|v| v.parse().unwrap_or_else(|_| usage())).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let binary = option(&args, "--mosquitto").map(PathBuf::from);
    match args.first().map(String::as_str) {
        Some("throughput") => {
            throughput(number(&args, "--messages", 100_000), number(&args, "--rounds", 3), binary)
        }
        Some("storm") => storm(
            number(&args, "--clients", 200),
            number(&args, "--idp-delay-ms", 200),
            number(&args, "--probe-secs", 0),
            binary,
        ),
        _ => usage(),
    }
}

fn config(binary: &Option<PathBuf>) -> MosquittoConfig {
    match binary {
        Some(path) => MosquittoConfig::new().binary(path),
        None => MosquittoConfig::new(),
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

const COMMON: &str = "set_tcp_nodelay true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n";

/// A raw MQTT 3.1.1 connection for bulk traffic.
fn raw_connection(port: u16, client_id: &str, credentials: Option<(&str, &str)>) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut connect = RawConnect::new(Protocol::V311, client_id);
    if let Some((user, password)) = credentials {
        connect.username = Some(user.as_bytes().to_vec());
        connect.password = Some(password.as_bytes().to_vec());
    }
    (&stream).write_all(&connect.encode()).unwrap();
    let mut connack = [0u8; 4];
    (&stream).read_exact(&mut connack).unwrap();
    assert_eq!(connack[3], 0, "{client_id} refused: CONNACK {}", connack[3]);
    stream
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
fn one_round(port: u16, credentials: Option<(&str, &str)>, messages: u64) -> (f64, u64) {
    let subscriber = raw_connection(port, "bench-sub", credentials);
    (&subscriber).write_all(&encode_subscribe(Protocol::V311, 1, &[("bench/#", 0)])).unwrap();
    let mut suback = [0u8; 5];
    (&subscriber).read_exact(&mut suback).unwrap();
    assert_eq!(suback[4], 0, "subscription refused");
    let publisher = raw_connection(port, "bench-pub", credentials);
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One broker configuration measured by the throughput benchmark.
struct Setup<'a> {
    name: &'a str,
    broker: &'a Mosquitto,
    credentials: Option<(&'a str, &'a str)>,
}

fn throughput(messages: u64, rounds: u64, binary: Option<PathBuf>) {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:write:bench/#", "mqtt:read:bench/#"]);
    let plugin = plugin_lines(&idp, "");
    let with_plugin = config(&binary).start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
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
    let setups = [
        Setup { name: "no auth", broker: &no_auth, credentials: None },
        Setup {
            name: "oauth plugin (every publish and delivery checked)",
            broker: &with_plugin,
            credentials: Some(("device-1", token.as_str())),
        },
        Setup {
            name: "password_file + acl_file",
            broker: &with_files,
            credentials: Some(("bench", "bench-pass")),
        },
    ];
    let mut rates = vec![Vec::new(); setups.len()];
    let mut lost = vec![0u64; setups.len()];
    for _ in 0..rounds {
        for (index, setup) in setups.iter().enumerate() {
            let (rate, missing) = one_round(setup.broker.port(), setup.credentials, messages);
            rates[index].push(rate);
            lost[index] += missing;
        }
    }
    let baseline = median(&mut rates[0].clone());
    println!("| setup | msgs/s (median of {rounds}) | ratio to no auth | messages lost |");
    println!("|---|---|---|---|");
    for (index, setup) in setups.iter().enumerate() {
        let rate = median(&mut rates[index]);
        let name = setup.name;
        println!("| {name} | {rate:.0} | {:.3} | {} |", rate / baseline, lost[index]);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn storm(clients: u64, delay_ms: u64, probe_secs: u64, binary: Option<PathBuf>) {
    let idp = Idp::start();
    let plugin = plugin_lines(&idp, "plugin_opt_oauth_http_timeout_ms 5000\n");
    let broker = config(&binary).start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
    let probe_token = idp.opaque_token("device-1", &["mqtt:write:probe/#", "mqtt:read:probe/#"]);
    let cold: Vec<String> = (0..clients)
        .map(|i| idp.opaque_token("device-2", &[&format!("mqtt:read:storm/{i}")]))
        .collect();
    let probe = MqttClient::connect(
        broker.port(),
        Protocol::V311,
        ConnectOptions::new("probe").credentials("probe", &probe_token),
    )
    .unwrap();
    assert_eq!(probe.subscribe("probe/#", 0), 0);
    idp.set_delay(delay_ms);

    let storming = Arc::new(AtomicBool::new(true));
    let port = broker.port();
    let started = Instant::now();
    let storm = std::thread::spawn({
        let storming = Arc::clone(&storming);
        move || {
            let workers: Vec<_> = cold
                .into_iter()
                .enumerate()
                .map(|(i, token)| {
                    std::thread::spawn(move || {
                        let id = format!("cold-{i}");
                        let options = ConnectOptions::new(&id).credentials(&id, &token);
                        MqttClient::connect(port, Protocol::V311, options).is_ok()
                    })
                })
                .collect();
            let accepted =
                workers.into_iter().map(|w| w.join()).filter(|r| matches!(r, Ok(true))).count();
            storming.store(false, Ordering::SeqCst);
            accepted
        }
    });
    let mut latencies = Vec::new();
    let minimum = Duration::from_secs(probe_secs);
    while storming.load(Ordering::SeqCst) || started.elapsed() < minimum {
        let sent = Instant::now();
        probe.publish("probe/ping", b"x", 0, false);
        match probe.recv(Duration::from_secs(30)) {
            Some(_) => latencies.push(sent.elapsed()),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(1).saturating_sub(sent.elapsed()));
    }
    let accepted = storm.join().unwrap();
    let storm_time = started.elapsed();
    latencies.sort();
    println!(
        "| broker | cold clients accepted | storm duration | probe round trips | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {accepted}/{clients} | {:.2} s | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
        broker
            .log()
            .lines()
            .find(|l| l.contains("version") && l.contains("starting"))
            .map(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != "version")
                    .nth(1)
                    .unwrap_or("?")
                    .to_owned()
            })
            .unwrap_or_else(|| "?".into()),
        storm_time.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
