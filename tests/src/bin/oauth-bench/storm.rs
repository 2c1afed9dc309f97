//! C. Round-trip latency of a connected client while cold-token clients connect.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::Idp;
use mosquitto_oauth_e2e::mqtt::{ConnectOptions, MqttClient, Protocol};

use super::{COMMON, config, plugin_lines};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

pub(super) fn run(clients: u64, delay_ms: u64, probe_secs: u64, binary: Option<PathBuf>) {
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
