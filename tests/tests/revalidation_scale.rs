//! Revalidation at fleet scale, in a real Mosquitto 2.0 with the plugin and a stub
//! authorization server that records when each introspection arrives: a round over thousands
//! of sessions never exceeds `oauth_revalidate_max_rps` at the server, asks once per distinct
//! token, and says when it cannot keep up with the interval.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_stub::{Reply, Stub};
use mosquitto_oauth_e2e::mosquitto::{MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{Protocol, RawConnect, RawSession};

/// Sessions with a token of their own.
const OWN_TOKENS: usize = 2_000;
/// Sessions sharing one token.
const SHARING: usize = 101;
const SHARED_TOKEN: &str = "shared-fleet-token";
/// The cap under test: 2 001 distinct tokens at 250/s take 8 s, more than the 4 s interval.
const MAX_RPS: usize = 250;
const INTERVAL_SECS: u64 = 4;

#[test]
fn a_round_over_thousands_of_sessions_keeps_to_the_rate_cap_and_asks_once_per_token() {
    let arrivals: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let record = Arc::clone(&arrivals);
    let exp = oauth_core::now_epoch() + 3_600;
    let stub = Stub::start(move |request| {
        let token = request.form_field("token").unwrap_or_default().to_owned();
        record.lock().unwrap().push((Instant::now(), token));
        Reply::json(serde_json::json!({"active": true, "scope": "mqtt:read:fleet/#", "exp": exp}))
    });
    let mosquitto = MosquittoConfig::new().start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id broker\n\
             plugin_opt_oauth_client_secret s\nplugin_opt_oauth_revalidate_interval {INTERVAL_SECS}\n\
             plugin_opt_oauth_revalidate_max_rps {MAX_RPS}\n\
             plugin_opt_oauth_login_wait_budget_ms 2000\n",
            ports.main,
            plugin_path().display(),
            stub.url("/introspect"),
        )
    });
    let tokens = (0..OWN_TOKENS)
        .map(|n| format!("fleet-token-{n:05}"))
        .chain(std::iter::repeat_n(SHARED_TOKEN.to_owned(), SHARING));
    let sessions: Vec<RawSession> = tokens
        .enumerate()
        .map(|(n, token)| {
            let mut connect = RawConnect::new(Protocol::V311, format!("device-{n:05}"));
            connect.username = Some(b"device".to_vec());
            connect.password = Some(token.into_bytes());
            connect.keep_alive_secs = 0;
            let session = RawSession::connect(mosquitto.port(), &connect);
            assert!(session.outcome().is_accepted(), "device-{n:05}: {:?}", session.outcome());
            session
        })
        .collect();
    let distinct = OWN_TOKENS + 1;
    // A token's first request is its login; every later one is a re-check. Rounds start every
    // 4 s from the broker's start, so the first may cover only the sessions connected by then:
    // wait until every token was re-checked at least once (a full round: about 8 s).
    let deadline = Instant::now() + Duration::from_secs(40);
    let (logins, rechecks) = loop {
        let (logins, rechecks) = split_logins_from_rechecks(&arrivals.lock().unwrap());
        if rechecks.iter().map(|(_, token)| token).collect::<HashSet<_>>().len() == distinct
            || Instant::now() > deadline
        {
            break (logins, rechecks);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(logins, distinct, "one login introspection per distinct token");
    let rechecked: HashSet<_> = rechecks.iter().map(|(_, token)| token).collect();
    assert_eq!(rechecked.len(), distinct, "every distinct token re-checked within 40 s");
    // At most two rounds have run (a partial one during the logins, then a full one), so the
    // shared token was asked for at most twice, not once per session.
    let shared = rechecks.iter().filter(|(_, token)| token == SHARED_TOKEN).count();
    assert!((1..=2).contains(&shared), "{SHARING} sessions sharing a token cost {shared} calls");
    // Re-checks start at least 1/250 s apart: 251 consecutive ones span a second, less the
    // few ms by which a loaded machine may delay one request's sending after its turn.
    let shortest = rechecks.windows(MAX_RPS + 1).map(|w| w[MAX_RPS].0 - w[0].0).min().unwrap();
    assert!(
        shortest >= Duration::from_millis(940),
        "{} re-checks within {shortest:?}",
        MAX_RPS + 1
    );
    // 2 001 tokens at 250/s take 8 s, twice the interval.
    mosquitto.expect_log("revalidation falls behind: ", Duration::from_secs(5));
    drop(sessions);
}

/// The number of login requests (each token's first) and the re-checks (every later request).
fn split_logins_from_rechecks(arrivals: &[(Instant, String)]) -> (usize, Vec<(Instant, String)>) {
    let mut seen = HashSet::new();
    let mut rechecks = Vec::new();
    for (at, token) in arrivals {
        if !seen.insert(token.clone()) {
            rechecks.push((*at, token.clone()));
        }
    }
    (seen.len(), rechecks)
}
