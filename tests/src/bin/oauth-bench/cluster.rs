//! Cluster rows of benchmark F: the fallback broker alone and as a 3-node cluster on loopback,
//! same authorization server and token, in alternating rounds of one run.
//!
//! - QoS 0 throughput, one publisher to one subscriber: on the single broker, on one node of the
//!   cluster (publisher and subscriber on node A), and across nodes (publisher on A, subscriber
//!   on B); messages/s from the first publish to the last delivery.
//! - Latency: a publisher sending one timestamped QoS 0 message every millisecond, for each
//!   layout; median and p99 of publish-to-delivery.
//! - Connect rate: CONNECT, CONNACK, DISCONNECT one at a time with one cached token, on the
//!   single broker and on each node of the cluster (a cluster login also takes the client id's
//!   lock and registers the client in the raft-replicated table).

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::fallback::{FallbackBroker, FallbackConfig, auth_lines, start_cluster};
use mosquitto_oauth_e2e::idp::Idp;
use mosquitto_oauth_e2e::mqtt::{Protocol, encode_publish, encode_subscribe};

use super::throughput::one_round_between;
use super::{connect, median, raw_connection};

/// Messages of a latency run (one per millisecond).
const LATENCY_MESSAGES: u32 = 2_000;

fn broker_file(idp: &Idp, port: u16) -> String {
    format!(
        "[auth]\n{}[[listener]]\ntype = \"tcp\"\nbind = \"127.0.0.1:{port}\"\n",
        auth_lines(idp)
    )
}

/// Where the publisher and the subscriber of one layout connect.
struct Layout<'a> {
    name: &'a str,
    publisher_port: u16,
    subscriber_port: u16,
}

pub(super) fn run(messages: u64, rounds: u64, connects: u64) {
    let idp = Idp::start();
    let token = idp.opaque_token("device-1", &["mqtt:write:bench/#", "mqtt:read:bench/#"]);
    let credentials = Some(("device-1", token.as_str()));
    let single: FallbackBroker = FallbackConfig::new().start(|p| broker_file(&idp, p.main));
    let nodes = start_cluster(3, |p| broker_file(&idp, p.main));
    let layouts = [
        Layout {
            name: "single broker",
            publisher_port: single.port(),
            subscriber_port: single.port(),
        },
        Layout {
            name: "cluster, publisher and subscriber on node A",
            publisher_port: nodes[0].port(),
            subscriber_port: nodes[0].port(),
        },
        Layout {
            name: "cluster, publisher on node A, subscriber on node B",
            publisher_port: nodes[0].port(),
            subscriber_port: nodes[1].port(),
        },
    ];

    let mut rates = vec![Vec::new(); layouts.len()];
    let mut lost = vec![0u64; layouts.len()];
    for layout in &layouts {
        one_round_between(layout.publisher_port, layout.subscriber_port, credentials, messages);
    }
    for round in 0..rounds as usize {
        for offset in 0..layouts.len() {
            let index = (round + offset) % layouts.len();
            let layout = &layouts[index];
            let (rate, missing) = one_round_between(
                layout.publisher_port,
                layout.subscriber_port,
                credentials,
                messages,
            );
            rates[index].push(rate);
            lost[index] += missing;
        }
    }
    println!(
        "| layout (QoS 0, 1→1, {messages} messages) | msgs/s (median of {rounds}) | ratio to the single broker | messages lost | latency median | latency p99 |"
    );
    println!("|---|---|---|---|---|---|");
    let medians: Vec<f64> = rates.iter_mut().map(|rates| median(rates)).collect();
    for (index, layout) in layouts.iter().enumerate() {
        let (p50, p99) = latency(layout, credentials);
        println!(
            "| {} | {:.0} | {:.3} | {} | {p50:.2} ms | {p99:.2} ms |",
            layout.name,
            medians[index],
            medians[index] / medians[0],
            lost[index]
        );
    }

    println!(
        "\n| connect rate ({connects} CONNECT/CONNACK/DISCONNECT, one cached token) | connects/s (median of {rounds}) |"
    );
    println!("|---|---|");
    let targets: Vec<(String, u16)> = std::iter::once(("single broker".to_owned(), single.port()))
        .chain(
            nodes
                .iter()
                .enumerate()
                .map(|(index, node)| (format!("cluster node {}", index + 1), node.port())),
        )
        .collect();
    let mut connect_rates = vec![Vec::new(); targets.len()];
    for round in 0..rounds as usize {
        for offset in 0..targets.len() {
            let index = (round + offset) % targets.len();
            let port = targets[index].1;
            let started = Instant::now();
            for n in 0..connects {
                let code = connect_cycle_closing(port, &format!("connect-{n}"), credentials);
                assert_eq!(code, 0, "refused on {}", targets[index].0);
            }
            connect_rates[index].push(connects as f64 / started.elapsed().as_secs_f64());
        }
    }
    for (index, (name, _)) in targets.iter().enumerate() {
        println!("| {name} | {:.0} |", median(&mut connect_rates[index]));
    }
}

/// One CONNECT, CONNACK, DISCONNECT cycle that closes its side after DISCONNECT (rmqtt waits
/// for the client to close, where Mosquitto closes at once) and waits for the broker's close.
fn connect_cycle_closing(port: u16, client_id: &str, credentials: Option<(&str, &str)>) -> u8 {
    let (mut stream, code, _) = connect(port, client_id, credentials, true);
    if code == 0 {
        stream.write_all(&[0xe0, 0x00]).expect("DISCONNECT sent");
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    code
}

/// Median and p99 of publish-to-delivery in milliseconds, one message per millisecond.
fn latency(layout: &Layout<'_>, credentials: Option<(&str, &str)>) -> (f64, f64) {
    let subscriber = raw_connection(layout.subscriber_port, "latency-sub", credentials);
    (&subscriber).write_all(&encode_subscribe(Protocol::V311, 1, &[("bench/latency", 0)])).unwrap();
    let mut suback = [0u8; 5];
    (&subscriber).read_exact(&mut suback).unwrap();
    let publisher = raw_connection(layout.publisher_port, "latency-pub", credentials);
    super::throughput::await_route(&publisher, &subscriber, "bench/latency");
    let epoch = Instant::now();
    let reader = std::thread::spawn(move || {
        let mut delays = Vec::with_capacity(LATENCY_MESSAGES as usize);
        let mut stream = BufReader::new(subscriber);
        while delays.len() < LATENCY_MESSAGES as usize {
            let Some(payload) = read_publish_payload(&mut stream) else { break };
            let sent = u64::from_be_bytes(payload[payload.len() - 8..].try_into().unwrap());
            let now = epoch.elapsed().as_micros() as u64;
            delays.push(now.saturating_sub(sent) as f64 / 1000.0);
        }
        delays
    });
    for n in 0..LATENCY_MESSAGES {
        let due = epoch + Duration::from_millis(u64::from(n));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let stamp = (epoch.elapsed().as_micros() as u64).to_be_bytes();
        let packet = encode_publish(Protocol::V311, "bench/latency", &stamp, 0, false, None);
        (&publisher).write_all(&packet).unwrap();
    }
    let mut delays = reader.join().unwrap();
    delays.sort_by(f64::total_cmp);
    let at =
        |fraction: f64| delays[((delays.len() as f64 * fraction) as usize).min(delays.len() - 1)];
    (at(0.5), at(0.99))
}

/// The payload of the next PUBLISH (QoS 0), skipping other packets; `None` on timeout or close.
fn read_publish_payload(stream: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    loop {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).ok()?;
        let kind = byte[0] >> 4;
        let (mut length, mut shift) = (0usize, 0);
        loop {
            stream.read_exact(&mut byte).ok()?;
            length |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).ok()?;
        if kind == 3 {
            let topic_length = usize::from(u16::from_be_bytes([body[0], body[1]]));
            return Some(body[2 + topic_length..].to_vec());
        }
    }
}
