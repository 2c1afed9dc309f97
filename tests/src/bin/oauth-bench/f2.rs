//! F2: the fallback broker ÷ the same engine without auth, QoS 0, one publisher to one
//! subscriber.
//!
//! Both brokers are started on CPU 0 alone (they inherit this process's affinity at exec, so
//! the engine's runtime sizes itself to one worker thread) and the load generator runs on
//! CPU 1. Each broker is then the bottleneck of its rounds and its rate follows its CPU cost
//! per message, which is what the OAuth layer adds to. Left to two worker threads competing
//! with the load generator for two CPUs, the same engine's rate swings by up to 2× between
//! rounds (`throughput --fallback`), far more than the layer costs.

use super::throughput::{engine_without_auth, fallback_broker, one_round, pin};
use super::{cpu_time, median, range};
use mosquitto_oauth_e2e::idp::Idp;

pub(super) fn run(messages: u64, rounds: u64) {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:write:bench/#", "mqtt:read:bench/#"]);
    let credentials = Some(("device-1", token.as_str()));
    let pinned = std::thread::available_parallelism().map_or(1, usize::from) >= 2;
    if pinned {
        pin(std::process::id(), "0");
    } else {
        eprintln!("one CPU: the brokers and the load generator share it, rounds will vary more");
    }
    let fallback = fallback_broker(&idp);
    let (engine, engine_port) = engine_without_auth();
    if pinned {
        pin(std::process::id(), "1");
    }
    // (name, port, pid); index 0 is the reference.
    let setups = [
        ("engine without auth (rmqtt alone)", engine_port, engine.pid()),
        ("fallback broker (rmqtt + the same core)", fallback.port(), fallback.pid()),
    ];
    // One unmeasured round each first: a broker's first round also grows its buffers.
    for (_, port, _) in setups {
        one_round(port, credentials, messages);
    }
    let mut rates = [Vec::new(), Vec::new()];
    let mut cpu_per_message = [Vec::new(), Vec::new()];
    let mut lost = [0u64; 2];
    // Each round starts with the other broker, so neither is always measured first.
    for round in 0..rounds as usize {
        for offset in 0..setups.len() {
            let index = (round + offset) % setups.len();
            let (_, port, pid) = setups[index];
            let before = cpu_time(pid);
            let (rate, missing) = one_round(port, credentials, messages);
            let spent = cpu_time(pid).total() - before.total();
            rates[index].push(rate);
            cpu_per_message[index].push(spent.as_secs_f64() * 1e6 / messages as f64);
            lost[index] += missing;
        }
    }
    // Ratios within each round, then their median: the machine's speed drifts between rounds.
    let mut rate_ratios: Vec<f64> = rates[1].iter().zip(&rates[0]).map(|(a, n)| a / n).collect();
    let mut cpu_ratios: Vec<f64> =
        cpu_per_message[1].iter().zip(&cpu_per_message[0]).map(|(a, n)| a / n).collect();
    let (rate_lo, rate_hi) = range(&rate_ratios);
    let (cpu_lo, cpu_hi) = range(&cpu_ratios);
    println!(
        "| broker (on one CPU, load generator on the other) | msgs/s (median of {rounds}) | CPU per message (median) | messages lost |"
    );
    println!("|---|---|---|---|");
    for (index, (name, _, _)) in setups.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} µs | {} |",
            median(&mut rates[index]),
            median(&mut cpu_per_message[index]),
            lost[index]
        );
    }
    println!(
        "\nF2: fallback broker / its engine without auth: {:.3} (rounds {rate_lo:.3}–{rate_hi:.3}); \
         CPU per message ratio {:.3} (rounds {cpu_lo:.3}–{cpu_hi:.3})",
        median(&mut rate_ratios),
        median(&mut cpu_ratios)
    );
}
