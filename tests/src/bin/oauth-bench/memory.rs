//! D. Broker RSS per cached token, and after many connect/disconnect cycles of one token.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::mosquitto::Mosquitto;

use super::tokens::{Signer, fixture_jwks};
use super::{COMMON, config, connect_cycle, key_file_plugin_lines, rss_kib, split_range};

pub(super) struct Options {
    /// Distinct tokens, each used for one connect.
    pub(super) tokens: u64,
    /// Connect/disconnect cycles with one token.
    pub(super) cycles: u64,
    /// Connections in flight at once.
    pub(super) workers: u64,
    /// Wait after each phase, so that the plugin's offline entries (kept 60 s) are purged.
    pub(super) settle_secs: u64,
    pub(super) binary: Option<PathBuf>,
}

/// Client ids of a batch of connect cycles.
#[derive(Clone, Copy)]
enum Ids {
    /// `<prefix><index>`: every cycle leaves an offline client entry behind (purged later).
    PerConnect,
    /// `<prefix>w<worker>`: each login replaces the last one's entry, so the plugin's client
    /// table stays at one entry per worker and what grows is the token cache.
    PerWorker,
}

/// Runs `count` connect cycles over `workers` parallel connections, the `index`th with
/// `password(index)`. Panics on a refusal: the figures would be wrong.
fn cycles(
    broker: &Mosquitto,
    prefix: &str,
    ids: Ids,
    count: u64,
    workers: u64,
    password: &(dyn Fn(u64) -> Option<String> + Sync),
) -> f64 {
    let port = broker.port();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (worker, range) in split_range(count, workers).into_iter().enumerate() {
            scope.spawn(move || {
                for i in range {
                    let client_id = match ids {
                        Ids::PerConnect => format!("{prefix}{i}"),
                        Ids::PerWorker => format!("{prefix}w{worker}"),
                    };
                    let password = password(i);
                    let credentials = password.as_deref().map(|p| ("bench", p));
                    let code = connect_cycle(port, &client_id, credentials);
                    assert_eq!(code, 0, "{client_id} refused: CONNACK {code}");
                }
            });
        }
    });
    count as f64 / started.elapsed().as_secs_f64()
}

fn settle(options: &Options) {
    if options.settle_secs > 0 {
        eprintln!("waiting {} s for offline sessions to be purged", options.settle_secs);
        std::thread::sleep(Duration::from_secs(options.settle_secs));
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Growth in bytes per item, signed (RSS can shrink).
fn per_item(from_kib: u64, to_kib: u64, items: u64) -> f64 {
    (to_kib as f64 - from_kib as f64) * 1024.0 / items.max(1) as f64
}

pub(super) fn run(options: &Options) {
    let signer = Signer::fixture();
    let started = Instant::now();
    let tokens = signer.tokens("mem-", options.tokens, options.workers);
    let cycle_token = signer.token("cycle");
    eprintln!("signed {} ES256 tokens in {:.1} s", options.tokens, started.elapsed().as_secs_f64());

    let files = config(&options.binary);
    let jwks = files.write_file("jwks.json", fixture_jwks());
    let cache_entries = options.tokens + 1000;
    let plugin = key_file_plugin_lines(
        &jwks,
        &format!("plugin_opt_oauth_cache_max_entries {cache_entries}\n"),
    );
    let broker = files.start(|p| {
        format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", p.main)
    });
    let pid = broker.pid();
    // One login first, so that what is set up on first use is in the starting figure.
    cycles(&broker, "warm-", Ids::PerConnect, 1, 1, &|_| Some(signer.token("warm")));
    let start = rss_kib(pid);

    let rate = cycles(&broker, "mem-", Ids::PerWorker, options.tokens, options.workers, &|i| {
        Some(tokens[usize::try_from(i).expect("index fits")].clone())
    });
    drop(tokens);
    let after_tokens = rss_kib(pid);
    settle(options);
    let cached = rss_kib(pid);

    let cycle_rate =
        cycles(&broker, "cycle-", Ids::PerConnect, options.cycles, options.workers, &|_| {
            Some(cycle_token.clone())
        });
    let after_cycles = rss_kib(pid);
    settle(options);
    let cycled = rss_kib(pid);
    // A second batch of as many cycles: growth that stays bounded (what the first batch left
    // is reused) shows here as none, a leak as the same growth again.
    let second_rate =
        cycles(&broker, "cycle2-", Ids::PerConnect, options.cycles, options.workers, &|_| {
            Some(cycle_token.clone())
        });
    let after_second = rss_kib(pid);

    // The same connects without auth: what Mosquitto itself (and its allocator) keeps after as
    // many connections, to set the plugin's figures against.
    let no_auth = config(&options.binary)
        .start(|p| format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous true\n", p.main));
    let no_auth_pid = no_auth.pid();
    cycles(&no_auth, "warm-", Ids::PerConnect, 1, 1, &|_| None);
    let no_auth_start = rss_kib(no_auth_pid);
    cycles(&no_auth, "mem-", Ids::PerConnect, options.tokens, options.workers, &|_| None);
    let no_auth_after = rss_kib(no_auth_pid);
    settle(options);
    let no_auth_settled = rss_kib(no_auth_pid);

    let tokens = options.tokens;
    let cycles = options.cycles;
    println!("| broker state | RSS | change | per item |");
    println!("|---|---|---|---|");
    println!(
        "| plugin (JWT mode, cache {cache_entries} entries), after start and one login | {:.1} MiB | | |",
        mib(start)
    );
    println!(
        "| after {tokens} distinct tokens connected once, one client id per worker ({rate:.0} connects/s) | {:.1} MiB | {:+.1} MiB | {:.0} B per token |",
        mib(after_tokens),
        mib(after_tokens) - mib(start),
        per_item(start, after_tokens, tokens)
    );
    println!(
        "| same, {} s later (tokens still cached) | {:.1} MiB | {:+.1} MiB | {:.0} B per cached token |",
        options.settle_secs,
        mib(cached),
        mib(cached) - mib(start),
        per_item(start, cached, tokens)
    );
    println!(
        "| after {cycles} more connect/disconnect cycles of one token, a new client id each ({cycle_rate:.0} connects/s) | {:.1} MiB | {:+.1} MiB | {:.1} B per cycle |",
        mib(after_cycles),
        mib(after_cycles) - mib(cached),
        per_item(cached, after_cycles, cycles)
    );
    println!(
        "| same, {} s later | {:.1} MiB | {:+.1} MiB | {:.1} B per cycle |",
        options.settle_secs,
        mib(cycled),
        mib(cycled) - mib(cached),
        per_item(cached, cycled, cycles)
    );
    println!(
        "| after {cycles} further cycles, new client ids ({second_rate:.0} connects/s) | {:.1} MiB | {:+.1} MiB | {:.1} B per cycle |",
        mib(after_second),
        mib(after_second) - mib(cycled),
        per_item(cycled, after_second, cycles)
    );
    println!(
        "| reference: no auth, after start and one connect | {:.1} MiB | | |",
        mib(no_auth_start)
    );
    println!(
        "| reference: no auth, after {tokens} connect/disconnect cycles | {:.1} MiB | {:+.1} MiB | {:.0} B per connect |",
        mib(no_auth_after),
        mib(no_auth_after) - mib(no_auth_start),
        per_item(no_auth_start, no_auth_after, tokens)
    );
    println!(
        "| reference: no auth, {} s later | {:.1} MiB | {:+.1} MiB | {:.0} B per connect |",
        options.settle_secs,
        mib(no_auth_settled),
        mib(no_auth_settled) - mib(no_auth_start),
        per_item(no_auth_start, no_auth_settled, tokens)
    );
}
