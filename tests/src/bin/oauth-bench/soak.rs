//! Soak: many clients with short-lived tokens (half opaque, half JWT, from the real
//! authorization server) publish QoS 1 to their own subscription for a long time, and renew
//! their token by reconnecting (clean session false) before it expires. Reports delivery loss,
//! refused connects, expiry kicks and the broker's RSS over time.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::{Idp, client_secret};
use mosquitto_oauth_e2e::mqtt::{Protocol, RawConnect, encode_publish, encode_subscribe};

use super::{config, plugin_lines, rss_kib};

pub(super) struct Options {
    pub(super) clients: u64,
    pub(super) duration: Duration,
    /// Token lifetime in seconds.
    pub(super) token_ttl: u64,
    /// Renewal point as a percentage of the lifetime (plus up to 15 % spread over the clients);
    /// above 100 the tokens expire first, to see expiry kicks counted.
    pub(super) renew_percent: u64,
    pub(super) publish_every: Duration,
    /// Client starts are spread over this time.
    pub(super) ramp: Duration,
    pub(super) report_every: Duration,
    pub(super) binary: Option<PathBuf>,
}

const AUDIENCE: &str = "urn:mqtt:soak";
/// The client of the test authorization server the tokens are asked for.
const TOKEN_CLIENT: &str = "device-1";
/// How long the clients keep running after they stopped publishing, for the last deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a client blocks on its socket before it looks at the run's phase again.
const POLL: Duration = Duration::from_millis(200);
/// Pause before trying again after a refused or failed connect.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Keep alive sent in CONNECT; clients publish far more often than this.
const KEEP_ALIVE_SECS: u16 = 60;

/// Counters shared by all clients, read by the reporter.
#[derive(Default)]
struct Counters {
    connected: AtomicI64,
    connects: AtomicU64,
    /// CONNACK with a non-zero return code.
    refused: AtomicU64,
    /// TCP connect or CONNACK read failures.
    connect_errors: AtomicU64,
    token_errors: AtomicU64,
    /// The broker closed a connection the client had not ended.
    kicks: AtomicU64,
    renewals: AtomicU64,
    /// PUBLISHes the broker acknowledged (PUBACK).
    acked: AtomicU64,
    /// First deliveries of the clients' own messages.
    delivered: AtomicU64,
    duplicates: AtomicU64,
    /// Acknowledged and not delivered yet.
    outstanding: AtomicI64,
    /// Published and not acknowledged yet.
    unacked: AtomicI64,
    suback_failures: AtomicU64,
    /// Reconnects after a kick that found the session present (and subscribed again).
    present_after_kick: AtomicU64,
}

/// Where the run is: `publishing` until the duration is over, `finished` after the drain.
struct Phase {
    publishing: AtomicBool,
    finished: AtomicBool,
}

/// What one client ends with.
#[derive(Default)]
struct Outcome {
    /// Acknowledged by the broker, never delivered back.
    lost: u64,
    /// Published, never acknowledged (still pending at the end).
    unacked: u64,
}

enum Event {
    Packet(u8, Vec<u8>),
    Idle,
    Closed,
}

/// A connection with a receive buffer, so that a read timeout never splits a packet.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn next(&mut self, wait: Duration) -> Event {
        loop {
            if let Some((header, body, used)) = parse_packet(&self.buffer) {
                self.buffer.drain(..used);
                return Event::Packet(header, body);
            }
            if self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).is_err() {
                return Event::Closed;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Event::Closed,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Event::Idle;
                }
                Err(_) => return Event::Closed,
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Sends DISCONNECT and waits for the broker to close; deliveries that arrive meanwhile
    /// are counted (they cannot be acknowledged any more, so the broker sends them again).
    fn close(mut self, state: &mut ClientState, counters: &Counters) {
        if !self.send(&[0xe0, 0x00]) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.next(deadline - Instant::now()) {
                Event::Packet(header, body) => state.handle(header, &body, None, counters),
                Event::Idle | Event::Closed => return,
            }
        }
    }
}

/// `(first byte, body, bytes used)` of the first complete packet in `buffer`.
fn parse_packet(buffer: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let header = *buffer.first()?;
    let (mut length, mut shift, mut position) = (0usize, 0, 1);
    loop {
        let byte = *buffer.get(position)?;
        position += 1;
        length |= usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let end = position + length;
    let body = buffer.get(position..end)?.to_vec();
    Some((header, body, end))
}

/// One client's message bookkeeping, kept across its connections.
struct ClientState {
    index: u32,
    next_seq: u32,
    next_packet_id: u16,
    /// Packet id -> sequence number of publishes waiting for their PUBACK.
    pending: HashMap<u16, u32>,
    acked: HashSet<u32>,
    delivered: HashSet<u32>,
}

impl ClientState {
    fn packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&self.next_packet_id) {
                return self.next_packet_id;
            }
        }
    }

    fn payload(&self, seq: u32) -> [u8; 8] {
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        payload[4..].copy_from_slice(&self.index.to_be_bytes());
        payload
    }

    /// Handles one packet from the broker; PUBACKs go to `reply` when it can still take them.
    fn handle(
        &mut self,
        header: u8,
        body: &[u8],
        reply: Option<&mut Connection>,
        counters: &Counters,
    ) {
        match header >> 4 {
            3 => {
                let qos = (header >> 1) & 0x03;
                let Some(topic_length) =
                    body.get(..2).map(|b| usize::from(b[0]) << 8 | usize::from(b[1]))
                else {
                    return;
                };
                let mut position = 2 + topic_length;
                let packet_id = if qos > 0 {
                    let id = body.get(position..position + 2).map(|b| [b[0], b[1]]);
                    position += 2;
                    id
                } else {
                    None
                };
                if let Some(payload) = body.get(position..position + 8) {
                    let seq = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    let owner =
                        u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    if owner == self.index {
                        if self.delivered.insert(seq) {
                            counters.delivered.fetch_add(1, Ordering::Relaxed);
                            if self.acked.contains(&seq) {
                                counters.outstanding.fetch_sub(1, Ordering::Relaxed);
                            }
                        } else {
                            counters.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                if let (Some(id), Some(connection)) = (packet_id, reply) {
                    connection.send(&[0x40, 0x02, id[0], id[1]]);
                }
            }
            4 => {
                let Some(id) = body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
                    return;
                };
                if let Some(seq) = self.pending.remove(&id) {
                    counters.unacked.fetch_sub(1, Ordering::Relaxed);
                    if self.acked.insert(seq) {
                        counters.acked.fetch_add(1, Ordering::Relaxed);
                        if !self.delivered.contains(&seq) {
                            counters.outstanding.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            9 if body.get(2).is_some_and(|code| *code == 0x80) => {
                counters.suback_failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Everything a client thread needs from the run.
struct Run<'a> {
    options: &'a Options,
    idp: &'a Idp,
    http: reqwest::blocking::Client,
    port: u16,
    counters: &'a Counters,
    phase: &'a Phase,
    started: Instant,
}

impl Run<'_> {
    /// A fresh token for client `index`: JWT for odd indexes, opaque for even ones, both with the
    /// soak audience and the configured lifetime. `None` if the server did not give one.
    fn token(&self, index: u32) -> Option<String> {
        // Asked with our own client rather than the harness's, which panics on transport errors
        // (Node closing an idle keep-alive connection, say); a soak counts them and carries on.
        let format = if index % 2 == 1 { "jwt" } else { "opaque" };
        let form = [
            ("grant_type", "client_credentials".to_owned()),
            ("scope", format!("mqtt:write:soak/{index} mqtt:read:soak/{index}")),
            ("resource", AUDIENCE.to_owned()),
            ("token_format", format.to_owned()),
            ("ttl", self.options.token_ttl.to_string()),
        ];
        let response = self
            .http
            .post(self.idp.token_url())
            .basic_auth(TOKEN_CLIENT, Some(client_secret(TOKEN_CLIENT)))
            .form(&form)
            .send()
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().ok()?;
        body["access_token"].as_str().map(str::to_owned)
    }

    /// Connects with `token`; the connection and whether the broker kept the session, or `None`
    /// after counting a refusal or failure.
    fn connect(&self, index: u32, token: &str) -> Option<(Connection, bool)> {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let _ = stream.set_nodelay(true);
        let mut connection = Connection { stream, buffer: Vec::new() };
        let mut connect = RawConnect::new(Protocol::V311, format!("soak-{index}"));
        connect.clean = false;
        connect.keep_alive_secs = KEEP_ALIVE_SECS;
        connect.username = Some(TOKEN_CLIENT.as_bytes().to_vec());
        connect.password = Some(token.as_bytes().to_vec());
        if !connection.send(&connect.encode()) {
            self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match connection.next(Duration::from_secs(30)) {
            Event::Packet(0x20, body) if body.len() >= 2 => {
                if body[1] == 0 {
                    Some((connection, body[0] & 1 == 1))
                } else {
                    self.counters.refused.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
            _ => {
                self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Renewal point of a token fetched now: `renew_percent` to `renew_percent` + 15 % of its
    /// lifetime, spread over the clients so that they do not all reconnect at once.
    fn renewal(&self, index: u32) -> Duration {
        let ttl_ms = self.options.token_ttl * 1000;
        let spread = (ttl_ms * 15 / 100).max(1);
        let base = ttl_ms * self.options.renew_percent / 100;
        Duration::from_millis(base + (u64::from(index) * 7919) % spread)
    }

    fn client(&self, index: u32) -> Outcome {
        let counters = self.counters;
        let clients = self.options.clients.max(1);
        let ramp_offset = self.options.ramp.mul_f64(f64::from(index) / clients as f64);
        std::thread::sleep(ramp_offset);
        let mut state = ClientState {
            index,
            next_seq: 0,
            next_packet_id: 0,
            pending: HashMap::new(),
            acked: HashSet::new(),
            delivered: HashSet::new(),
        };
        let topic = format!("soak/{index}");
        let mut next_publish =
            Instant::now() + self.options.publish_every.mul_f64(f64::from(index % 101) / 101.0);
        let mut kicked = false;
        'connection: while !self.phase.finished.load(Ordering::Relaxed) {
            let Some(token) = self.token(index) else {
                counters.token_errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(RETRY_PAUSE);
                continue;
            };
            let renew_at = Instant::now() + self.renewal(index);
            let Some((mut connection, session_present)) = self.connect(index, &token) else {
                std::thread::sleep(RETRY_PAUSE);
                continue;
            };
            counters.connects.fetch_add(1, Ordering::Relaxed);
            counters.connected.fetch_add(1, Ordering::Relaxed);
            if kicked && session_present {
                counters.present_after_kick.fetch_add(1, Ordering::Relaxed);
            }
            // After an expiry kick the session can be present without its subscription: the
            // kick makes Mosquitto re-check a durable session's subscriptions, the plugin denies
            // them for the expired token, and Mosquitto drops them. So a kicked client
            // subscribes again, as a real one that noticed would.
            if !session_present || kicked {
                let id = state.packet_id();
                connection.send(&encode_subscribe(Protocol::V311, id, &[(&topic, 1)]));
                kicked = false;
            }
            // What the last connection did not get acknowledged goes again, marked DUP.
            let mut resend: Vec<(u16, u32)> = state.pending.iter().map(|(i, s)| (*i, *s)).collect();
            resend.sort_unstable();
            for (id, seq) in resend {
                let mut packet =
                    encode_publish(Protocol::V311, &topic, &state.payload(seq), 1, false, Some(id));
                packet[0] |= 0x08;
                connection.send(&packet);
            }
            loop {
                let now = Instant::now();
                if self.phase.finished.load(Ordering::Relaxed) {
                    connection.close(&mut state, counters);
                    counters.connected.fetch_sub(1, Ordering::Relaxed);
                    break 'connection;
                }
                if now >= renew_at {
                    connection.close(&mut state, counters);
                    counters.connected.fetch_sub(1, Ordering::Relaxed);
                    counters.renewals.fetch_add(1, Ordering::Relaxed);
                    continue 'connection;
                }
                let publishing = self.phase.publishing.load(Ordering::Relaxed);
                if publishing && now >= next_publish {
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    let id = state.packet_id();
                    state.pending.insert(id, seq);
                    counters.unacked.fetch_add(1, Ordering::Relaxed);
                    let packet = encode_publish(
                        Protocol::V311,
                        &topic,
                        &state.payload(seq),
                        1,
                        false,
                        Some(id),
                    );
                    connection.send(&packet);
                    next_publish += self.options.publish_every;
                    if next_publish < now {
                        next_publish = now + self.options.publish_every;
                    }
                }
                let mut wake = renew_at.min(now + POLL);
                if publishing {
                    wake = wake.min(next_publish);
                }
                match connection.next(wake.saturating_duration_since(Instant::now())) {
                    Event::Idle => {}
                    Event::Closed => {
                        kicked = true;
                        counters.kicks.fetch_add(1, Ordering::Relaxed);
                        counters.connected.fetch_sub(1, Ordering::Relaxed);
                        continue 'connection;
                    }
                    Event::Packet(header, body) => {
                        state.handle(header, &body, Some(&mut connection), counters);
                    }
                }
            }
        }
        let lost = state.acked.iter().filter(|seq| !state.delivered.contains(seq)).count();
        Outcome { lost: lost as u64, unacked: state.pending.len() as u64 }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(super) fn run(options: &Options) {
    let idp = Idp::start();
    let extra = format!(
        "plugin_opt_oauth_issuer {}\nplugin_opt_oauth_audience {AUDIENCE}\n\
         plugin_opt_oauth_http_timeout_ms 5000\n",
        idp.issuer()
    );
    let plugin = plugin_lines(&idp, &extra);
    let broker = config(&options.binary).start(|p| {
        format!(
            "set_tcp_nodelay true\nlistener {} 127.0.0.1\nallow_anonymous false\n{plugin}",
            p.main
        )
    });
    let pid = broker.pid();
    let counters = Counters::default();
    let phase = Phase { publishing: AtomicBool::new(true), finished: AtomicBool::new(false) };
    let run = Run {
        options,
        idp: &idp,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client builds"),
        port: broker.port(),
        counters: &counters,
        phase: &phase,
        started: Instant::now(),
    };
    println!(
        "soak: {} clients (half opaque, half JWT), {} s tokens, QoS 1 every {} ms, {} s; broker pid {pid}, RSS at start {:.1} MiB",
        options.clients,
        options.token_ttl,
        options.publish_every.as_millis(),
        options.duration.as_secs(),
        mib(rss_kib(pid))
    );
    println!();
    println!(
        "| elapsed s | connected | published (acked) | delivered | renewals | kicks | refused | broker RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut samples: Vec<u64> = Vec::new();
    let report = |samples: &mut Vec<u64>| {
        let rss = rss_kib(pid);
        samples.push(rss);
        println!(
            "| {:.0} | {} | {} | {} | {} | {} | {} | {:.1} |",
            run.started.elapsed().as_secs_f64(),
            counters.connected.load(Ordering::Relaxed),
            counters.acked.load(Ordering::Relaxed),
            counters.delivered.load(Ordering::Relaxed),
            counters.renewals.load(Ordering::Relaxed),
            counters.kicks.load(Ordering::Relaxed),
            counters.refused.load(Ordering::Relaxed),
            mib(rss)
        );
    };
    let (outcomes, drained) = std::thread::scope(|scope| {
        let run = &run;
        let threads: Vec<_> = (0..options.clients)
            .map(|index| {
                let index = u32::try_from(index).expect("fewer than 2^32 clients");
                std::thread::Builder::new()
                    .name(format!("soak-{index}"))
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || run.client(index))
                    .expect("client thread starts")
            })
            .collect();
        let mut next_report = run.started + options.report_every;
        while run.started.elapsed() < options.duration {
            let until = next_report.min(run.started + options.duration);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            if Instant::now() >= next_report {
                report(&mut samples);
                next_report += options.report_every;
            }
        }
        phase.publishing.store(false, Ordering::SeqCst);
        let drain_started = Instant::now();
        while (counters.outstanding.load(Ordering::Relaxed) > 0
            || counters.unacked.load(Ordering::Relaxed) > 0)
            && drain_started.elapsed() < DRAIN_TIMEOUT
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let drained = drain_started.elapsed();
        report(&mut samples);
        phase.finished.store(true, Ordering::SeqCst);
        let outcomes: Vec<Outcome> =
            threads.into_iter().map(|t| t.join().expect("client thread")).collect();
        (outcomes, drained)
    });
    let lost: u64 = outcomes.iter().map(|o| o.lost).sum();
    let unacked: u64 = outcomes.iter().map(|o| o.unacked).sum();
    let calls = idp.stats();
    let first = samples.first().copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let max = samples.iter().copied().max().unwrap_or_default();
    println!();
    println!("| result | value |");
    println!("|---|---|");
    println!(
        "| messages published and acknowledged | {} |",
        counters.acked.load(Ordering::Relaxed)
    );
    println!("| delivered back (first copies) | {} |", counters.delivered.load(Ordering::Relaxed));
    println!("| **lost** (acknowledged, never delivered) | {lost} |");
    println!("| never acknowledged | {unacked} |");
    println!("| duplicate deliveries | {} |", counters.duplicates.load(Ordering::Relaxed));
    println!("| connects accepted | {} |", counters.connects.load(Ordering::Relaxed));
    println!("| token renewals (reconnects) | {} |", counters.renewals.load(Ordering::Relaxed));
    println!(
        "| **connects refused** (CONNACK ≠ 0) | {} |",
        counters.refused.load(Ordering::Relaxed)
    );
    println!(
        "| connect failures (TCP, no CONNACK) | {} |",
        counters.connect_errors.load(Ordering::Relaxed)
    );
    println!("| **kicks** (closed by the broker) | {} |", counters.kicks.load(Ordering::Relaxed));
    println!("| SUBACK failures | {} |", counters.suback_failures.load(Ordering::Relaxed));
    println!(
        "| reconnects after a kick with the session present (subscribed again) | {} |",
        counters.present_after_kick.load(Ordering::Relaxed)
    );
    println!("| token requests failed | {} |", counters.token_errors.load(Ordering::Relaxed));
    println!(
        "| authorization server calls | {} token, {} introspection, {} JWKS |",
        calls.tokens, calls.introspections, calls.jwks
    );
    println!("| drain after the last publish | {:.1} s |", drained.as_secs_f64());
    println!(
        "| broker RSS first / last / max | {:.1} / {:.1} / {:.1} MiB |",
        mib(first),
        mib(last),
        mib(max)
    );
}
