//! E. Scale: what the plugin costs as connected token clients grow. N idle clients (half with
//! JWTs checked against a key file, half with opaque tokens introspected at a stub
//! authorization server) on Mosquitto with the plugin, and as many on the same Mosquitto
//! without auth presenting the same usernames and passwords (Mosquitto keeps both for every
//! client, whoever checks them), held by child processes (a process may open 20 000 files
//! here; both brokers' clients together need more). Per N: broker RSS per client over no auth,
//! the time to connect all N, a 1 → 1 throughput round with the N idle (alternating between
//! the two brokers), and a revalidation round: its length, the authorization server's requests
//! per second during it, and a probe client's round trips meanwhile. With `--fallback`, the
//! same N clients then connect to the fallback broker configured alike: its RSS per client
//! and connect time, beside Mosquitto's.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_stub::{Reply, Stub};
use mosquitto_oauth_e2e::fallback::{FallbackConfig, toml_string};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, plugin_path};
use mosquitto_oauth_e2e::mqtt::{ConnectOptions, MqttClient, Protocol, RawConnect};

use super::storm::{percentile, probe_round_trips};
use super::throughput::one_round;
use super::tokens::{LOCAL_AUDIENCE, LOCAL_ISSUER, Signer, fixture_jwks};
use super::{COMMON, config, main_thread_cpu_time, median, rss_kib, split_range};

pub(super) struct Options {
    /// Connected clients per step.
    pub(super) sizes: Vec<u64>,
    /// Messages per throughput round.
    pub(super) messages: u64,
    /// Throughput rounds per broker and step.
    pub(super) rounds: u64,
    /// `oauth_revalidate_interval` of the plugin.
    pub(super) interval_secs: u64,
    /// `oauth_revalidate_max_rps` of the plugin.
    pub(super) max_rps: u64,
    /// Idle clients for the revocation latency figure (at `max_rps` and half of it); none
    /// when `None`.
    pub(super) revocation_clients: Option<u64>,
    /// Also measure the fallback broker (the release binary must be built).
    pub(super) fallback: bool,
    pub(super) binary: Option<PathBuf>,
}

/// Connections a holder has in flight at once: a fleet's devices connect independently, and
/// on Mosquitto 2.1 a delayed login waits up to 100 ms for the broker's next main-loop pass,
/// so a few connections in flight would measure that latency instead of the broker's rate.
const HOLDER_THREADS: u64 = 64;

/// `oauth-bench hold PORT FILE`: connects one idle MQTT 3.1.1 client per line of FILE (client
/// id, a space, and the password, or `-` for none; keep alive off), prints `connected <ms>`,
/// and keeps them until its standard input closes.
pub(super) fn hold(port: u16, file: &Path) {
    let text = std::fs::read_to_string(file).expect("holder's client list is readable");
    let lines: Vec<&str> = text.lines().collect();
    let started = Instant::now();
    let connections: Vec<TcpStream> = std::thread::scope(|scope| {
        let parts: Vec<_> = split_range(lines.len() as u64, HOLDER_THREADS)
            .into_iter()
            .map(|range| {
                let lines = &lines;
                scope.spawn(move || {
                    range
                        .map(|i| {
                            let (id, password) = lines[i as usize].split_once(' ').unwrap();
                            idle_client(port, id, (password != "-").then_some(password))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|part| part.join().expect("holder thread")).collect()
    });
    println!("connected {}", started.elapsed().as_millis());
    std::io::stdout().flush().unwrap();
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    drop(connections);
}

/// A connected client that sends nothing more (keep alive 0: the broker never times it out).
fn idle_client(port: u16, client_id: &str, password: Option<&str>) -> TcpStream {
    use std::io::Read;
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("broker accepts TCP");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut connect = RawConnect::new(Protocol::V311, client_id);
    connect.keep_alive_secs = 0;
    if let Some(password) = password {
        connect.username = Some(b"bench".to_vec());
        connect.password = Some(password.as_bytes().to_vec());
    }
    (&stream).write_all(&connect.encode()).unwrap();
    let mut connack = [0u8; 4];
    (&stream).read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "{client_id} refused: {connack:?}");
    stream
}

/// A child process holding idle clients; ends them when dropped.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    /// Starts a holder for `clients` (id, password) and waits until all are connected; the
    /// time that took.
    fn connect(port: u16, clients: &[(String, Option<String>)], dir: &Path) -> (Self, Duration) {
        let file = dir.join(format!("clients-{port}.txt"));
        let list: String = clients
            .iter()
            .map(|(id, password)| format!("{id} {}\n", password.as_deref().unwrap_or("-")))
            .collect();
        std::fs::write(&file, list).unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["hold", &port.to_string(), file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("holder starts");
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let millis: u64 = line
            .strip_prefix("connected ")
            .and_then(|ms| ms.trim().parse().ok())
            .unwrap_or_else(|| panic!("holder failed: {line:?}"));
        (Self { child, stdin }, Duration::from_millis(millis))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.wait().is_err() {
            let _ = self.child.kill();
        }
    }
}

/// Introspection requests seen by the stub: when, and for which token.
type Arrivals = Arc<Mutex<Vec<(Instant, String)>>>;

/// Tokens the stub authorization server answers inactive.
type Revoked = Arc<Mutex<HashSet<String>>>;

/// A stub authorization server answering every token active for an hour, unless revoked.
fn authorization_server() -> (Stub, Arrivals, Revoked) {
    let arrivals: Arrivals = Arc::default();
    let revoked: Revoked = Arc::default();
    let (record, refuse) = (Arc::clone(&arrivals), Arc::clone(&revoked));
    let exp = oauth_core::now_epoch() + 3_600;
    let stub = Stub::start(move |request| {
        let token = request.form_field("token").unwrap_or_default().to_owned();
        let active = !refuse.lock().unwrap().contains(&token);
        record.lock().unwrap().push((Instant::now(), token));
        Reply::json(serde_json::json!({"active": active, "scope": "mqtt:read:idle/#", "exp": exp}))
    });
    (stub, arrivals, revoked)
}

/// Plugin lines: `auto` mode (JWTs against the key file, other tokens introspected at `stub`),
/// revalidation every `interval_secs` at most `max_rps`, room in the cache for `clients`.
fn plugin_lines(
    jwks: &Path,
    stub: &Stub,
    interval_secs: u64,
    max_rps: u64,
    clients: u64,
    extra: &str,
) -> String {
    format!(
        "plugin {}\nplugin_opt_oauth_jwks_file {}\nplugin_opt_oauth_issuer {LOCAL_ISSUER}\n\
         plugin_opt_oauth_audience {LOCAL_AUDIENCE}\nplugin_opt_oauth_stats_interval 0\n\
         plugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id bench\n\
         plugin_opt_oauth_client_secret bench\nplugin_opt_oauth_revalidate_interval {interval_secs}\n\
         plugin_opt_oauth_revalidate_max_rps {max_rps}\nplugin_opt_oauth_cache_max_entries {}\n\
         plugin_opt_oauth_login_wait_budget_ms 5000\n{extra}",
        plugin_path().display(),
        jwks.display(),
        stub.url("/introspect"),
        clients + 1_000,
    )
}

/// `n` idle clients named `idle-<index>`, half with JWTs, half with opaque tokens.
fn token_clients(signer: &Signer, n: u64) -> Vec<(String, Option<String>)> {
    let jwts = signer.tokens("scale-", n / 2, 2);
    let opaque = (n / 2..n).map(|i| format!("opaque-scale-{i:06}"));
    jwts.into_iter()
        .chain(opaque)
        .enumerate()
        .map(|(i, token)| (format!("idle-{i:06}"), Some(token)))
        .collect()
}

/// Revocation latency with `n` idle token clients and `oauth_jwt_revocation introspect` (every
/// token re-checked by a call, JWTs too) at `max_rps`: one opaque-token and one JWT client are
/// revoked at the authorization server at once; how long until each is disconnected, or
/// `None` if not within twice the round's planned length.
fn revocation_latency(
    options: &Options,
    signer: &Signer,
    n: u64,
    max_rps: u64,
) -> (Option<Duration>, Option<Duration>) {
    eprintln!("scale: revocation latency, {n} clients, at most {max_rps}/s");
    let (stub, arrivals, revoked) = authorization_server();
    let files = config(&options.binary);
    let jwks = files.write_file("jwks.json", fixture_jwks());
    let plugin = plugin_lines(
        &jwks,
        &stub,
        options.interval_secs,
        max_rps,
        n,
        "plugin_opt_oauth_jwt_revocation introspect\n",
    );
    let broker = files.start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
    let dir = tempfile::tempdir().unwrap();
    let (holder, _) = Holder::connect(broker.port(), &token_clients(signer, n), dir.path());
    let victim_jwt = signer.token_for("victim", "mqtt:read:idle/#");
    let victim_opaque = "opaque-victim".to_owned();
    let victims =
        [("victim-opaque", &victim_opaque), ("victim-jwt", &victim_jwt)].map(|(id, token)| {
            let options = ConnectOptions::new(id).credentials("bench", token);
            MqttClient::connect(broker.port(), Protocol::V311, options).unwrap()
        });
    // A client that connects during a round is first re-checked in the next one (up to two
    // intervals after its login, when its token was just validated): revoke once both victims
    // have been re-checked, a third of an interval later, so the figure is the steady state's.
    let planned = Duration::from_secs(options.interval_secs.max((n + 2) / max_rps + 1));
    let rechecked = |token: &str| {
        arrivals.lock().unwrap().iter().filter(|(_, asked)| asked == token).count() >= 2
    };
    let deadline = Instant::now() + planned * 3;
    while !(rechecked(&victim_opaque) && rechecked(&victim_jwt)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(options.interval_secs) / 3);
    revoked.lock().unwrap().extend([victim_opaque, victim_jwt]);
    let revoked_at = Instant::now();
    let [opaque, jwt] = std::thread::scope(|scope| {
        victims
            .each_ref()
            .map(|victim| {
                scope.spawn(move || {
                    victim.wait_disconnected(planned * 2).map(|_| revoked_at.elapsed())
                })
            })
            .map(|waiter| waiter.join().unwrap())
    });
    drop(broker);
    drop(holder);
    (opaque, jwt)
}

/// One step's figures.
struct Step {
    clients: u64,
    rss_per_client: f64,
    /// Broker RSS growth per client, bytes: Mosquitto without auth, with the plugin.
    no_auth_per_client: f64,
    plugin_per_client: f64,
    fallback: Option<FallbackStep>,
    connect_plugin: Duration,
    connect_no_auth: Duration,
    throughput_ratio: f64,
    cpu_ratio: f64,
    round: Option<Duration>,
    mean_rps: f64,
    peak_rps: usize,
    probe_p50: Duration,
    probe_p99: Duration,
}

pub(super) fn run(options: &Options) {
    let signer = Signer::fixture();
    let steps: Vec<Step> = options.sizes.iter().map(|&n| step(options, &signer, n)).collect();
    println!(
        "| idle clients | broker RSS per client over no auth | connect all: plugin / no auth | throughput ratio to no auth (broker thread CPU per message ratio) | revalidation round | authorization server requests/s in the round: mean / peak 1 s | probe round trip during the round: p50 / p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for step in &steps {
        println!(
            "| {} | {:.0} B | {:.1} s / {:.1} s | {:.3} ({:.3}) | {} | {:.0} / {} | {:.2} ms / {:.2} ms |",
            step.clients,
            step.rss_per_client,
            step.connect_plugin.as_secs_f64(),
            step.connect_no_auth.as_secs_f64(),
            step.throughput_ratio,
            step.cpu_ratio,
            step.round.map_or("not seen".to_owned(), |round| format!(
                "{:.1} s for {} tokens",
                round.as_secs_f64(),
                step.clients / 2
            )),
            step.mean_rps,
            step.peak_rps,
            step.probe_p50.as_secs_f64() * 1e3,
            step.probe_p99.as_secs_f64() * 1e3,
        );
    }
    println!(
        "\nHalf the clients hold JWTs (verified locally, never re-checked by a call), half opaque tokens (introspected at login and re-checked every {} s, at most {}/s); the authorization server is an in-process stub answering at once. The clients of Mosquitto without auth present the same usernames and passwords.",
        options.interval_secs, options.max_rps
    );
    if options.fallback {
        println!(
            "\nBroker RSS per connected client (growth over the idle broker), the same clients and tokens:\n"
        );
        println!(
            "| idle clients | Mosquitto without auth | Mosquitto with the plugin | fallback broker | connect all: fallback broker |"
        );
        println!("|---|---|---|---|---|");
        for step in &steps {
            let Some(fallback) = &step.fallback else { continue };
            println!(
                "| {} | {:.0} B | {:.0} B | {:.0} B | {:.1} s |",
                step.clients,
                step.no_auth_per_client,
                step.plugin_per_client,
                fallback.rss_per_client,
                fallback.connect.as_secs_f64()
            );
        }
    }
    if let Some(n) = options.revocation_clients {
        println!(
            "\nRevocation latency with {n} idle clients, every token re-checked by a call (`oauth_jwt_revocation introspect`), interval {} s:\n",
            options.interval_secs
        );
        println!(
            "| cap | a round of all tokens at the cap | opaque token: revoked → disconnected | JWT: revoked → disconnected |"
        );
        println!("|---|---|---|---|");
        for max_rps in [options.max_rps, options.max_rps / 2] {
            let (opaque, jwt) = revocation_latency(options, &signer, n, max_rps);
            let shown = |latency: Option<Duration>| {
                latency.map_or("not within twice the round".to_owned(), |l| {
                    format!("{:.1} s", l.as_secs_f64())
                })
            };
            println!(
                "| {max_rps}/s | {:.0} s | {} | {} |",
                ((n + 2) as f64 / max_rps as f64).max(options.interval_secs as f64),
                shown(opaque),
                shown(jwt)
            );
        }
    }
}

fn step(options: &Options, signer: &Signer, n: u64) -> Step {
    eprintln!("scale: {n} clients");
    let token_clients = token_clients(signer, n);

    let (stub, arrivals, _) = authorization_server();
    let files = config(&options.binary);
    let jwks = files.write_file("jwks.json", fixture_jwks());
    let plugin = plugin_lines(&jwks, &stub, options.interval_secs, options.max_rps, n, "");
    let with_plugin = files.start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
    let no_auth = config(&options.binary)
        .start(|p| format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous true\n", p.main));
    let dir = tempfile::tempdir().unwrap();
    let warm = signer.token_for("warm", "mqtt:read:idle/#");
    drop(idle_client(with_plugin.port(), "warm", Some(&warm)));
    drop(idle_client(no_auth.port(), "warm", None));
    let (plugin_before, no_auth_before) = (rss_kib(with_plugin.pid()), rss_kib(no_auth.pid()));
    let (plugin_holder, connect_plugin) =
        Holder::connect(with_plugin.port(), &token_clients, dir.path());
    let (no_auth_holder, connect_no_auth) =
        Holder::connect(no_auth.port(), &token_clients, dir.path());
    let per_client = |kib: u64| kib as f64 * 1024.0 / n as f64;
    let plugin_per_client = per_client(rss_kib(with_plugin.pid()).saturating_sub(plugin_before));
    let no_auth_per_client = per_client(rss_kib(no_auth.pid()).saturating_sub(no_auth_before));

    let (throughput_ratio, cpu_ratio) = throughput(options, signer, &with_plugin, &no_auth);
    let (round, mean_rps, peak_rps, probe) =
        revalidation_round(options, signer, &with_plugin, &arrivals, n - n / 2);
    drop((with_plugin, no_auth));
    drop((plugin_holder, no_auth_holder));
    let fallback = options
        .fallback
        .then(|| fallback_step(options, &token_clients, &stub, signer.token_for("warm", "x")));
    Step {
        clients: n,
        rss_per_client: plugin_per_client - no_auth_per_client,
        no_auth_per_client,
        plugin_per_client,
        fallback,
        connect_plugin,
        connect_no_auth,
        throughput_ratio,
        cpu_ratio,
        round,
        mean_rps,
        peak_rps,
        probe_p50: percentile(&probe, 0.5),
        probe_p99: percentile(&probe, 0.99),
    }
}

/// The fallback broker with `clients` connected.
struct FallbackStep {
    rss_per_client: f64,
    connect: Duration,
}

/// Connects `clients` to the fallback broker, with the authorization server, keys and
/// revalidation settings the plugin had: its RSS growth per client and the connect time.
fn fallback_step(
    options: &Options,
    clients: &[(String, Option<String>)],
    stub: &Stub,
    warm_token: String,
) -> FallbackStep {
    let n = clients.len() as u64;
    let files = FallbackConfig::new();
    let jwks = files.write_file("jwks.json", fixture_jwks());
    let broker = files.start(|p| {
        format!(
            "[auth]\njwks_file = {}\nissuer = {}\naudience = {}\nintrospection_url = {}\n\
             client_id = \"bench\"\nclient_secret = \"bench\"\nrevalidate_interval = {}\n\
             revalidate_max_rps = {}\ncache_max_entries = {}\n\
             [[listener]]\ntype = \"tcp\"\nbind = \"127.0.0.1:{}\"\n",
            toml_string(&jwks.display().to_string()),
            toml_string(LOCAL_ISSUER),
            toml_string(LOCAL_AUDIENCE),
            toml_string(&stub.url("/introspect")),
            options.interval_secs,
            options.max_rps,
            n + 1_000,
            p.main,
        )
    });
    drop(idle_client(broker.port(), "warm", Some(&warm_token)));
    let before = rss_kib(broker.pid());
    let dir = tempfile::tempdir().unwrap();
    let (holder, connect) = Holder::connect(broker.port(), clients, dir.path());
    let rss_per_client = rss_kib(broker.pid()).saturating_sub(before) as f64 * 1024.0 / n as f64;
    drop(holder);
    FallbackStep { rss_per_client, connect }
}

/// Alternating 1 → 1 rounds on both brokers: the medians of the plugin's rate and broker CPU
/// per message relative to no auth's in the same cycle.
fn throughput(
    options: &Options,
    signer: &Signer,
    with_plugin: &Mosquitto,
    no_auth: &Mosquitto,
) -> (f64, f64) {
    let token = signer.token_for("bench", "mqtt:write:bench/# mqtt:read:bench/#");
    // The broker thread's CPU: what ACL checks cost. The plugin's revalidation threads run
    // meanwhile (a round is spread over the whole interval), their cost grows with N and is
    // reported by the round's figures.
    let measure = |broker: &Mosquitto, credentials| {
        let before = main_thread_cpu_time(broker.pid()).total();
        let (rate, lost) = one_round(broker.port(), credentials, options.messages);
        assert_eq!(lost, 0, "messages lost");
        let cpu = main_thread_cpu_time(broker.pid()).total().saturating_sub(before);
        (rate, cpu.as_secs_f64() / options.messages as f64)
    };
    measure(no_auth, None);
    measure(with_plugin, Some(("bench", token.as_str())));
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        let (base_rate, base_cpu) = measure(no_auth, None);
        let (rate, cpu) = measure(with_plugin, Some(("bench", token.as_str())));
        rates.push(rate / base_rate);
        cpus.push(cpu / base_cpu.max(f64::MIN_POSITIVE));
    }
    (median(&mut rates), median(&mut cpus))
}

/// Waits for a revalidation round over the `opaque` introspected tokens (every token asked for
/// again after its login), probing round trips meanwhile: the round's length, the mean and
/// peak (any second) requests per second at the authorization server, and the probe's sorted
/// round trips.
fn revalidation_round(
    options: &Options,
    signer: &Signer,
    with_plugin: &Mosquitto,
    arrivals: &Arrivals,
    opaque: u64,
) -> (Option<Duration>, f64, usize, Vec<Duration>) {
    let probe_token = signer.token_for("probe", "mqtt:write:probe/# mqtt:read:probe/#");
    let probe = MqttClient::connect(
        with_plugin.port(),
        Protocol::V311,
        ConnectOptions::new("probe").credentials("probe", &probe_token),
    )
    .unwrap();
    assert_eq!(probe.subscribe("probe/#", 0), 0);
    // Rounds start every interval; one over `opaque` tokens at the cap may take longer.
    let limit = Duration::from_secs(options.interval_secs * 2 + 10 + opaque / options.max_rps);
    let watching = AtomicBool::new(true);
    let since = Instant::now();
    let (round_trips, round) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let started = Instant::now();
            let mut round = None;
            while started.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(200));
                round = first_full_round(&arrivals.lock().unwrap(), opaque, since);
                if round.is_some() {
                    break;
                }
            }
            watching.store(false, std::sync::atomic::Ordering::SeqCst);
            round
        });
        let (round_trips, _) = probe_round_trips(&probe, &watching, Duration::ZERO);
        (round_trips, watcher.join().unwrap())
    });
    let Some(round) = round else { return (None, 0.0, 0, round_trips) };
    let length = round.last().unwrap().duration_since(round[0]);
    let mean = round.len() as f64 / length.as_secs_f64().max(1e-3);
    let peak = round
        .iter()
        .enumerate()
        .map(|(i, start)| {
            round[i..].iter().take_while(|at| **at < *start + Duration::from_secs(1)).count()
        })
        .max()
        .unwrap_or(0);
    (Some(length), mean, peak, round_trips)
}

/// The arrival times of the first `expected` distinct re-checks from `since` on (a token's
/// first request is its login): a round's worth of calls.
fn first_full_round(
    arrivals: &[(Instant, String)],
    expected: u64,
    since: Instant,
) -> Option<Vec<Instant>> {
    let mut logged_in = HashSet::new();
    let mut rechecked = HashSet::new();
    let mut round = Vec::new();
    for (at, token) in arrivals {
        if logged_in.insert(token.as_str()) || *at < since {
            continue;
        }
        if !rechecked.insert(token.as_str()) {
            // A second re-check: a round ended before all were asked; start counting anew.
            rechecked.clear();
            rechecked.insert(token.as_str());
            round.clear();
        }
        round.push(*at);
        if rechecked.len() as u64 == expected {
            return Some(round);
        }
    }
    None
}
