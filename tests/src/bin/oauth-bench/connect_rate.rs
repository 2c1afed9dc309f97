//! B. CONNECT, CONNACK, DISCONNECT one at a time, as a rate and as a ratio to no auth, with the
//! calls the authorization server saw.

use std::path::PathBuf;
use std::time::Instant;

use mosquitto_oauth_e2e::idp::{Idp, IdpStats, TokenFormat, TokenRequest};
use mosquitto_oauth_e2e::mosquitto::Mosquitto;

use super::tokens::mint;
use super::{COMMON, config, connect_cycle, median, plugin_lines};

const AUDIENCE: &str = "urn:mqtt:bench";

/// Which password each connect of a row sends.
enum Passwords {
    None,
    Same(String),
    /// One per connect, `rounds * connects` of them, used in order.
    Distinct(Vec<String>),
}

struct Row {
    name: &'static str,
    broker: Mosquitto,
    passwords: Passwords,
    rates: Vec<f64>,
    refused: u64,
    calls: IdpStats,
}

fn mint_distinct(idp: &Idp, count: u64, format: TokenFormat) -> Vec<String> {
    let started = Instant::now();
    let tokens = mint(idp, count, 8, |idp, i| {
        let scopes = [format!("mqtt:read:bench/{i}/#")];
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let request = TokenRequest::new("device-1", &scopes);
        match format {
            TokenFormat::Jwt => idp.token(&request.resource(AUDIENCE)),
            TokenFormat::Opaque => idp.token(&request),
        }
    });
    eprintln!(
        "minted {count} {format:?} tokens at the authorization server in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokens
}

pub(super) fn run(connects: u64, rounds: u64, binary: Option<PathBuf>) {
    let rounds = rounds.max(1);
    let idp = Idp::start();
    let plugin = plugin_lines(&idp, "");
    let start_plugin = |extra: &str| {
        config(&binary).start(|p| {
            format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous false\n{plugin}{extra}", p.main)
        })
    };
    let jwt_lines =
        format!("plugin_opt_oauth_issuer {}\nplugin_opt_oauth_audience {AUDIENCE}\n", idp.issuer());
    let total = connects * rounds;
    let same = idp.opaque_token("device-1", &["mqtt:read:bench/#"]);
    let jwts = mint_distinct(&idp, total, TokenFormat::Jwt);
    let opaque = mint_distinct(&idp, total, TokenFormat::Opaque);
    let mut rows = vec![
        Row {
            name: "no auth",
            broker: config(&binary).start(|p| {
                format!("{COMMON}listener {} 127.0.0.1\nallow_anonymous true\n", p.main)
            }),
            passwords: Passwords::None,
            rates: Vec::new(),
            refused: 0,
            calls: IdpStats::default(),
        },
        Row {
            name: "oauth plugin, one opaque token reused",
            broker: start_plugin(""),
            passwords: Passwords::Same(same),
            rates: Vec::new(),
            refused: 0,
            calls: IdpStats::default(),
        },
        Row {
            name: "oauth plugin, distinct JWTs (RS256, local verification)",
            broker: start_plugin(&jwt_lines),
            passwords: Passwords::Distinct(jwts),
            rates: Vec::new(),
            refused: 0,
            calls: IdpStats::default(),
        },
        Row {
            name: "oauth plugin, distinct opaque tokens (introspection each)",
            broker: start_plugin(""),
            passwords: Passwords::Distinct(opaque),
            rates: Vec::new(),
            refused: 0,
            calls: IdpStats::default(),
        },
    ];
    for round in 0..rounds {
        for row in &mut rows {
            let port = row.broker.port();
            let before = idp.stats();
            let started = Instant::now();
            for i in 0..connects {
                let client_id = format!("rate-{i}");
                let credentials = match &row.passwords {
                    Passwords::None => None,
                    Passwords::Same(token) => Some(("device-1", token.as_str())),
                    Passwords::Distinct(tokens) => {
                        let index = usize::try_from(round * connects + i).expect("index fits");
                        Some(("device-1", tokens[index].as_str()))
                    }
                };
                if connect_cycle(port, &client_id, credentials) != 0 {
                    row.refused += 1;
                }
            }
            row.rates.push(connects as f64 / started.elapsed().as_secs_f64());
            let after = idp.stats();
            row.calls.introspections += after.introspections - before.introspections;
            row.calls.jwks += after.jwks - before.jwks;
        }
    }
    let baseline = median(&mut rows[0].rates.clone());
    println!(
        "| setup | connects/s (median of {rounds} x {connects}) | ratio to no auth | \
         authorization server calls in {total} connects | refused |"
    );
    println!("|---|---|---|---|---|");
    for row in &mut rows {
        let rate = median(&mut row.rates);
        let calls = match row.passwords {
            Passwords::None => "—".to_owned(),
            _ => format!("{} introspection, {} JWKS", row.calls.introspections, row.calls.jwks),
        };
        println!(
            "| {} | {rate:.0} | {:.3} | {calls} | {} |",
            row.name,
            rate / baseline,
            row.refused
        );
    }
}
