//! C. Round-trip latency of a connected client while cold-token clients connect.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// How long a refused cold client waits before it connects again, as a device backs off.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// A cold client gives up after this long.
const GIVE_UP: Duration = Duration::from_secs(60);

pub(super) fn run(
    clients: u64,
    delay_ms: u64,
    probe_secs: u64,
    wait_budget_ms: Option<u64>,
    binary: Option<PathBuf>,
) {
    let idp = Idp::start();
    let budget_line = wait_budget_ms
        .map(|ms| format!("plugin_opt_oauth_login_wait_budget_ms {ms}\n"))
        .unwrap_or_default();
    let plugin =
        plugin_lines(&idp, &format!("plugin_opt_oauth_http_timeout_ms 5000\n{budget_line}"));
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
    let refusals = Arc::new(AtomicU64::new(0));
    let port = broker.port();
    let started = Instant::now();
    let storm = std::thread::spawn({
        let storming = Arc::clone(&storming);
        let refusals = Arc::clone(&refusals);
        move || {
            let workers: Vec<_> = cold
                .into_iter()
                .enumerate()
                .map(|(i, token)| {
                    let refusals = Arc::clone(&refusals);
                    std::thread::spawn(move || {
                        let id = format!("cold-{i}");
                        loop {
                            let options = ConnectOptions::new(&id).credentials(&id, &token);
                            // Kept connected until the storm is over.
                            if let Ok(client) = MqttClient::connect(port, Protocol::V311, options) {
                                return Some(client);
                            }
                            refusals.fetch_add(1, Ordering::Relaxed);
                            if started.elapsed() >= GIVE_UP {
                                return None;
                            }
                            std::thread::sleep(RETRY_PAUSE);
                        }
                    })
                })
                .collect();
            let connected: Vec<MqttClient> =
                workers.into_iter().filter_map(|w| w.join().ok().flatten()).collect();
            let accepted = connected.len();
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
        "| broker | oauth_login_wait_budget_ms | cold clients connected | refusals retried | storm duration | probe round trips | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {accepted}/{clients} | {} | {:.2} s | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
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
        wait_budget_ms
            .map_or_else(|| "5000 (default: the timeout)".to_owned(), |ms| ms.to_string()),
        refusals.load(Ordering::Relaxed),
        storm_time.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
