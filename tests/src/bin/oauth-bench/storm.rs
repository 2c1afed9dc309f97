//! C. Round-trip latency of a connected client while cold-token clients connect.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::Idp;
use mosquitto_oauth_e2e::mqtt::{ConnectOptions, MqttClient, Protocol};

use super::{COMMON, config, plugin_lines};

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
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

/// The probe publishes this often, whatever has come back.
const PROBE_PERIOD: Duration = Duration::from_millis(1);

/// How long the probe waits for its last messages once it has stopped sending.
const PROBE_DRAIN: Duration = Duration::from_secs(30);

/// Open-loop probe: publishes to its own subscription every [`PROBE_PERIOD`] while the storm
/// lasts (and at least `minimum`), whatever has come back, each message carrying its send time.
/// A stalled broker thus shows in every message sent during the stall; a probe waiting for each
/// answer before the next would record one slow round trip and skip the rest. Returns the round
/// trips of the messages that came back, sorted, and how many were sent.
pub(super) fn probe_round_trips(
    probe: &MqttClient,
    storming: &AtomicBool,
    minimum: Duration,
) -> (Vec<Duration>, u64) {
    let epoch = Instant::now();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut sent = 0u32;
            while storming.load(Ordering::SeqCst) || epoch.elapsed() < minimum {
                let due = epoch + PROBE_PERIOD * sent;
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let sent_at = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                probe.publish("probe/ping", &sent_at.to_le_bytes(), 0, false);
                sent += 1;
            }
            u64::from(sent)
        });
        let mut sender = Some(sender);
        let mut latencies = Vec::new();
        // Once the sender has stopped: how many it sent, and until when to wait for them.
        let mut stopped: Option<(u64, Instant)> = None;
        loop {
            if let Some(message) = probe.recv(Duration::from_millis(100)) {
                let sent_at = message.payload.try_into().map(u64::from_le_bytes).unwrap();
                latencies.push(epoch.elapsed().saturating_sub(Duration::from_nanos(sent_at)));
            }
            if let Some(finished) = sender.take_if(|sender| sender.is_finished()) {
                stopped = Some((finished.join().unwrap(), Instant::now() + PROBE_DRAIN));
            }
            if let Some((sent, deadline)) = stopped
                && (latencies.len() as u64 >= sent || Instant::now() >= deadline)
            {
                latencies.sort();
                return (latencies, sent);
            }
        }
    })
}

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
    let minimum = Duration::from_secs(probe_secs);
    let (latencies, sent) = probe_round_trips(&probe, &storming, minimum);
    let accepted = storm.join().unwrap();
    let storm_time = started.elapsed();
    println!(
        "| broker | authorization server delay | oauth_login_wait_budget_ms | cold clients connected | refusals retried | storm duration | probe messages returned | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {delay_ms} ms | {} | {accepted}/{clients} | {} | {:.2} s | {}/{sent} | {:.2} ms | {:.2} ms | {:.2} ms |",
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
        wait_budget_ms.map_or_else(|| "150 (default)".to_owned(), |ms| ms.to_string()),
        refusals.load(Ordering::Relaxed),
        storm_time.as_secs_f64(),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
