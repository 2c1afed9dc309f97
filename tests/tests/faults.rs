//! Fault injection end to end: real Mosquitto 2.0 with the plugin, an authorization server that
//! misbehaves in every way we could think of, and clients that send the worst input MQTT allows.
//!
//! Rules pinned for every authorization-server fault: the login is refused (CONNACK 0x87 on
//! MQTT 5, 5 on 3.1.1) within the configured HTTP timeout plus a margin (a correctness bound,
//! not a speed target), clients already connected keep publishing and receiving, Mosquitto
//! keeps running, the log says what happened and never holds a token, the client secret or a
//! panic. For bad client input: nothing crashes, nothing reaches the authorization server that
//! cannot be a token, and no grant is ever widened. The hostile-input tests run on Mosquitto and
//! on the fallback broker (same core, rmqtt front end); where the two front ends legitimately
//! differ, a [`Kind`] method says what to expect, never a skipped assertion.
//!
//! Already covered elsewhere and not repeated here: a SIGSTOPped and a killed real IdP
//! (`authorization_server_outage_refuses_new_logins_but_not_connected_clients`), NUL, 0xFF and
//! 65535-byte passwords on 3.1.1 and anonymous logins
//! (`binary_and_oversized_passwords_are_refused_without_harm`), both in `scenarios`; the same
//! faults one level down, without a broker, in `auth-core/tests/{introspection,jwt}.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::fallback::{FallbackBroker, FallbackConfig, toml_string};
use mosquitto_oauth_e2e::faults::{Fault, FaultServer, TlsServer};
use mosquitto_oauth_e2e::fixture_key;
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, ConnectRefused, MqttClient, Protocol, RawConnect, RawOutcome, RawSession,
};
use mosquitto_oauth_e2e::scenarios::{QUIET, WAIT, not_authorized, round_trip};

/// `oauth_http_timeout_ms` of every broker here.
const HTTP_TIMEOUT: Duration = Duration::from_millis(1000);
/// Added to [`HTTP_TIMEOUT`] for the refusal bound: Mosquitto's own work and a loaded 2-core
/// machine, not a performance budget.
const MARGIN: Duration = Duration::from_secs(2);
/// The plugin's client secret at the authorization server; must never be logged.
const CLIENT_SECRET: &str = "fault-suite-secret-7c41e9";
/// Username marking token logins (`oauth_token_username`); other usernames go to the
/// password file.
const TOKEN_USER: &str = "oauth2";
/// The password-file user showing that Mosquitto keeps serving other clients.
const OPERATOR: (&str, &str) = ("operator", "operator-pass-31");
/// JWT settings.
const ISSUER: &str = "https://issuer.faults.test";
const AUDIENCE: &str = "urn:mqtt:broker";

// ---------------------------------------------------------------------------------------------
// Brokers and clients
// ---------------------------------------------------------------------------------------------

fn introspection_options(url: &str) -> String {
    format!(
        "plugin_opt_oauth_introspection_url {url}\nplugin_opt_oauth_client_id mqtt-broker\n\
         plugin_opt_oauth_client_secret {CLIENT_SECRET}\n"
    )
}

fn jwt_options(jwks_url: &str) -> String {
    format!(
        "plugin_opt_oauth_mode jwt\nplugin_opt_oauth_jwks_url {jwks_url}\n\
         plugin_opt_oauth_issuer {ISSUER}\nplugin_opt_oauth_audience {AUDIENCE}\n"
    )
}

/// Mosquitto with the plugin (`options`, a 1 s HTTP timeout) for logins with username
/// [`TOKEN_USER`], and a password file holding [`OPERATOR`], who may use `ops/#`. A login may
/// wait for the whole timeout (`oauth_login_wait_budget_ms`), so that each fault is reported
/// by the login it met rather than by a background check.
fn broker_with_operator(options: &str) -> Mosquitto {
    let config = MosquittoConfig::new();
    let passwd = config.password_file(&[OPERATOR]);
    let acl = config.write_file("acl", format!("user {}\ntopic readwrite ops/#\n", OPERATOR.0));
    config.start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
             plugin {}\nplugin_opt_oauth_token_username {TOKEN_USER}\n\
             plugin_opt_oauth_http_timeout_ms {timeout}\nplugin_opt_oauth_login_wait_budget_ms {timeout}\n\
             {options}",
            ports.main,
            passwd.display(),
            acl.display(),
            plugin_path().display(),
            timeout = HTTP_TIMEOUT.as_millis(),
        )
    })
}

/// The operator, connected and subscribed to `ops/#`.
fn operator(broker: &Mosquitto) -> MqttClient {
    let options = ConnectOptions::new("operator-1").credentials(OPERATOR.0, OPERATOR.1);
    let client = MqttClient::connect(broker.port(), Protocol::V5, options).unwrap();
    assert_eq!(client.subscribe("ops/#", 0), 0x00);
    client
}

/// A token login (username [`TOKEN_USER`]), timed.
fn token_login(
    broker: &Mosquitto,
    protocol: Protocol,
    client_id: &str,
    token: &str,
) -> (Result<MqttClient, ConnectRefused>, Duration) {
    let started = Instant::now();
    let options = ConnectOptions::new(client_id).credentials(TOKEN_USER, token);
    let outcome = MqttClient::connect(broker.port(), protocol, options);
    (outcome, started.elapsed())
}

/// Asserts the refusal rule: "not authorized" in `protocol`, within the HTTP timeout + margin.
fn assert_refused_in_time(
    what: &str,
    protocol: Protocol,
    (outcome, elapsed): (Result<MqttClient, ConnectRefused>, Duration),
) {
    assert_eq!(
        outcome.err(),
        Some(ConnectRefused::Code(not_authorized(protocol))),
        "{what}: expected CONNACK {:#x}",
        not_authorized(protocol)
    );
    assert!(elapsed < HTTP_TIMEOUT + MARGIN, "{what}: the refusal took {elapsed:?}");
}

/// Asserts what no log may ever hold: tokens, the client secret, echoed requests, panics.
fn assert_log_is_clean(log: &str, tokens: &[String]) {
    for token in tokens {
        assert!(!log.contains(token.as_str()), "a token reached the log:\n{log}");
    }
    assert!(!log.contains(CLIENT_SECRET), "the client secret reached the log:\n{log}");
    let lower = log.to_lowercase();
    // The fault server's 500 and garbage answers echo the request: its `token=` form field
    // and its `Authorization: Basic` header must not be quoted either.
    // ("panicked": a Rust panic message; "(panic)": the plugin's catch_unwind report. Not
    // "panic" alone: rmqtt logs error backtraces, which name `std::panicking` frames.)
    for marker in ["token=", "authorization:", "basic ", "panicked", "(panic)"] {
        assert!(!lower.contains(marker), "{marker:?} in the log:\n{log}");
    }
}

/// Token text unique within this test process (opaque: not JWT-shaped).
fn unique_token(label: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

// ---------------------------------------------------------------------------------------------
// Introspection faults
// ---------------------------------------------------------------------------------------------

/// One authorization-server fault and the words the log must use for it.
struct Case {
    name: &'static str,
    /// `None`: the server is down (nothing listens: connection refused).
    fault: Option<Fault>,
    explains: &'static str,
}

fn introspection_cases() -> Vec<Case> {
    vec![
        Case {
            name: "connection-refused",
            fault: None,
            explains: "cannot reach the authorization server",
        },
        Case {
            name: "closed-without-answer",
            fault: Some(Fault::Close),
            explains: "request to the authorization server failed",
        },
        Case {
            name: "http-500",
            fault: Some(Fault::ServerError),
            explains: "the authorization server answered HTTP 500",
        },
        Case {
            name: "garbage-200",
            fault: Some(Fault::Garbage),
            explains: "the authorization server's answer is malformed: invalid JSON",
        },
        Case {
            name: "10mb-announced",
            fault: Some(Fault::Huge),
            explains: "the authorization server's answer exceeds 65536 bytes",
        },
        Case {
            name: "10mb-unannounced",
            fault: Some(Fault::HugeUnannounced),
            explains: "the authorization server's answer exceeds 65536 bytes",
        },
        Case {
            name: "slow-drip",
            fault: Some(Fault::Drip),
            explains: "the authorization server did not answer within 1s",
        },
        Case {
            name: "never-answers",
            fault: Some(Fault::Hang),
            explains: "the authorization server did not answer within 1s",
        },
    ]
}

/// Every way an introspection endpoint can fail refuses the new login in time, with a log line
/// naming the failure, while a token client and a password user connected before keep working;
/// when the server recovers, logins work again. (A stopped real IdP: see the module docs.)
#[test]
fn authorization_server_faults_refuse_the_login_in_time_and_harm_nobody_else() {
    let device_token = unique_token("device-1");
    let device_scope = "mqtt:write:devices/device-1/# mqtt:read:devices/device-1/#";
    let healthy = Fault::Introspection(vec![(device_token.clone(), device_scope.to_owned())]);
    let mut server = FaultServer::start(healthy);
    let mut broker = broker_with_operator(&introspection_options(&server.url("/introspect")));
    let operator = operator(&broker);
    let (device, _) = token_login(&broker, Protocol::V5, "device-1", &device_token);
    let device = device.unwrap();
    assert_eq!(device.subscribe("devices/device-1/#", 0), 0x00);

    let mut tokens = vec![device_token];
    for (index, case) in introspection_cases().into_iter().enumerate() {
        match case.fault {
            Some(fault) => {
                server.come_up();
                server.set(fault);
            }
            None => server.go_down(),
        }
        // Both protocol versions, alternately: the refusal code differs.
        let protocol = if index % 2 == 0 { Protocol::V5 } else { Protocol::V311 };
        let token = unique_token(case.name);
        let mark = broker.log_mark();
        let outcome = token_login(&broker, protocol, "device-2", &token);
        assert_refused_in_time(case.name, protocol, outcome);
        let expected = format!("client \"device-2\" refused: {}", case.explains);
        assert!(
            broker.wait_for_log_since(mark, &expected, WAIT),
            "{}: {expected:?} not logged; log since the login:\n{}",
            case.name,
            broker.log_since(mark)
        );
        round_trip(&device, &format!("devices/device-1/after-{}", case.name), true);
        round_trip(&operator, &format!("ops/after-{}", case.name), true);
        assert!(broker.exited().is_none(), "{}: mosquitto exited:\n{}", case.name, broker.log());
        tokens.push(token);
    }

    // Recovery: nothing lingers (failures are not cached), a new token logs in.
    let fresh = unique_token("device-3");
    server.come_up();
    server.set(Fault::Introspection(vec![(fresh.clone(), "mqtt:read:devices/#".to_owned())]));
    let (recovered, _) = token_login(&broker, Protocol::V5, "device-3", &fresh);
    assert_eq!(recovered.unwrap().subscribe("devices/#", 0), 0x00);
    tokens.push(fresh);
    assert_log_is_clean(&broker.log(), &tokens);
}

/// HTTPS to a server whose certificate was issued by a CA nobody trusts: refused in time, with a
/// log line naming the certificate problem, and the broker keeps serving. With that CA as
/// `oauth_ca_file` the handshake passes (`openssl s_server -www` then gives no usable answer to
/// a POST): the first refusal was the certificate's doing.
#[test]
fn introspection_over_tls_with_an_unknown_ca_is_refused_with_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsServer::start(dir.path());
    let broker = broker_with_operator(&introspection_options(&tls.url("/introspect")));
    let operator = operator(&broker);
    let token = unique_token("tls");
    for protocol in [Protocol::V5, Protocol::V311] {
        let mark = broker.log_mark();
        assert_refused_in_time("unknown CA", protocol, token_login(&broker, protocol, "d", &token));
        let expected = "client \"d\" refused: cannot reach the authorization server";
        assert!(broker.wait_for_log_since(mark, expected, WAIT), "{}", broker.log());
        let line = broker.log_since(mark);
        assert!(line.contains("invalid peer certificate: UnknownIssuer"), "{line}");
    }
    round_trip(&operator, "ops/after-tls", true);
    assert!(std::net::TcpStream::connect(tls.addr()).is_ok(), "the TLS server is still up");
    assert_log_is_clean(&broker.log(), std::slice::from_ref(&token));

    let ca = format!("plugin_opt_oauth_ca_file {}\n", tls.ca_file().display());
    let trusting = broker_with_operator(&(introspection_options(&tls.url("/introspect")) + &ca));
    let outcome = token_login(&trusting, Protocol::V5, "d", &token);
    assert_refused_in_time("trusted CA", Protocol::V5, outcome);
    trusting.expect_log("client \"d\" refused: ", WAIT);
    assert!(!trusting.log().contains("peer certificate"), "{}", trusting.log());
    assert_log_is_clean(&trusting.log(), &[token]);
}

// ---------------------------------------------------------------------------------------------
// JWKS faults
// ---------------------------------------------------------------------------------------------

/// A fixture file of `auth-core/tests/keys`.
/// The JWKS publishing `rsa-1` and `ec-1`.
fn jwks_before_rotation() -> String {
    fixture_key("jwks-1.json")
}

/// The JWKS after a rotation: only `rsa-2` (the old keys are withdrawn).
fn jwks_after_rotation() -> String {
    let mut document: serde_json::Value =
        serde_json::from_str(&fixture_key("jwks-rotated.json")).unwrap();
    document["keys"].as_array_mut().unwrap().retain(|key| key["kid"] == "rsa-2");
    assert_eq!(document["keys"].as_array().unwrap().len(), 1, "jwks-rotated.json publishes rsa-2");
    document.to_string()
}

/// A fresh JWT access token (unique `jti`, so no cached verdict applies) signed with fixture
/// key `key` (`rsa-1`, `rsa-2`, `ec-1`) under `kid` = the key's name, reading and writing
/// `devices/#`.
fn jwt(key: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let pem = fixture_key(&format!("{key}.pem"));
    let (alg, encoding) = if key.starts_with("ec") {
        (Algorithm::ES256, EncodingKey::from_ec_pem(pem.as_bytes()).unwrap())
    } else {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = Some(key.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let now = oauth_core::now_epoch();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "device",
        "client_id": "device",
        "iat": now,
        "exp": now + 600,
        "jti": unique_token("jti"),
        "scope": "mqtt:read:devices/# mqtt:write:devices/#",
    });
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

/// Logs in with fresh tokens from `key` every 200 ms until one is accepted, asserting that
/// every refusal is a clean "not authorized"; panics after `within`. The wait is the plugin's
/// documented rate limit on JWKS refetches (one per 5 s), not a guess at readiness.
fn first_accepted_login(broker: &Mosquitto, key: &str, within: Duration) -> MqttClient {
    let deadline = Instant::now() + within;
    loop {
        match token_login(broker, Protocol::V5, "jwt-device", &jwt(key)) {
            (Ok(client), _) => return client,
            (outcome, elapsed) => {
                assert_refused_in_time(key, Protocol::V5, (outcome, elapsed));
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {key} login accepted within {within:?}; log:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Refetch rate limit of the core (`oauth_core::jwt::REFRESH_MIN_INTERVAL`) plus a margin.
const REFETCH_WAIT: Duration = Duration::from_secs(5 + 5);

/// A JWKS URL that is down when Mosquitto starts does not stop it: JWT logins are refused with
/// a log line saying why (password users are unaffected), and once the JWKS is reachable the
/// next refetch loads the keys and JWT logins succeed.
#[test]
fn jwks_down_at_start_refuses_jwt_logins_until_it_comes_up() {
    let mut jwks = FaultServer::down(Fault::Json(jwks_before_rotation()));
    let broker = broker_with_operator(&jwt_options(&jwks.url("/jwks")));
    broker.expect_log("JWKS prefetch failed (retried when a token needs it)", WAIT);
    let operator = operator(&broker);

    let mark = broker.log_mark();
    let token = jwt("rsa-1");
    assert_refused_in_time(
        "no keys",
        Protocol::V5,
        token_login(&broker, Protocol::V5, "early", &token),
    );
    assert_refused_in_time(
        "no keys",
        Protocol::V311,
        token_login(&broker, Protocol::V311, "early", &token),
    );
    // Inside the 5 s refetch window the login is told why the start-up download failed;
    // after it, the login's own download fails the same way.
    assert!(
        broker.wait_for_log_since(mark, "client \"early\" refused: ", WAIT),
        "{}",
        broker.log_since(mark)
    );
    let refusals: Vec<String> = broker
        .log_since(mark)
        .lines()
        .filter(|line| line.contains("client \"early\" refused: "))
        .map(str::to_owned)
        .collect();
    assert!(
        refusals.iter().all(|line| line.contains("cannot reach the authorization server")),
        "{refusals:#?}"
    );
    round_trip(&operator, "ops/while-jwks-down", true);

    jwks.come_up();
    let client = first_accepted_login(&broker, "rsa-1", REFETCH_WAIT);
    broker.expect_log("loaded 2 verification key(s)", WAIT);
    assert_eq!(client.subscribe("devices/#", 0), 0x00);
    round_trip(&client, "devices/after-jwks-up", true);
    round_trip(&operator, "ops/after-jwks-up", true);
    assert_log_is_clean(&broker.log(), &[token]);
}

/// Key rotation: a token signed with a new key (new `kid`) is accepted once the JWKS is
/// refetched; while the JWKS URL is down, tokens with the cached kid still work and tokens with
/// an unknown kid are refused (the failed refetch keeps the previous keys); clients connected
/// all along keep working.
#[test]
fn jwks_rotation_takes_new_keys_and_survives_the_jwks_url_going_down() {
    let mut jwks = FaultServer::start(Fault::Json(jwks_before_rotation()));
    let broker = broker_with_operator(&jwt_options(&jwks.url("/jwks")));
    broker.expect_log("loaded 2 verification key(s)", WAIT);
    let operator = operator(&broker);
    let (before, _) = token_login(&broker, Protocol::V5, "before-rotation", &jwt("rsa-1"));
    let before = before.unwrap();
    assert_eq!(before.subscribe("devices/before/#", 0), 0x00);

    // Rotation: rsa-2 replaces rsa-1 and ec-1.
    jwks.set(Fault::Json(jwks_after_rotation()));
    let after = first_accepted_login(&broker, "rsa-2", REFETCH_WAIT);
    broker.expect_log("loaded 1 verification key(s)", WAIT);
    assert_eq!(after.subscribe("devices/after/#", 0), 0x00);

    // The JWKS URL goes down: the cached key keeps working ...
    jwks.go_down();
    let (cached_kid, _) = token_login(&broker, Protocol::V5, "cached-kid", &jwt("rsa-2"));
    cached_kid.unwrap();
    // ... and an unknown kid is refused every time; once the rate limit allows, a refetch is
    // tried, fails, and the previous keys are kept.
    let mark = broker.log_mark();
    let deadline = Instant::now() + REFETCH_WAIT;
    while !broker.log_since(mark).contains("JWKS refresh failed, keeping the previous keys") {
        let token = jwt("ec-1");
        assert_refused_in_time(
            "withdrawn kid",
            Protocol::V5,
            token_login(&broker, Protocol::V5, "old-kid", &token),
        );
        assert!(
            Instant::now() < deadline,
            "no refetch attempt logged:\n{}",
            broker.log_since(mark)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        broker.log_since(mark).contains("token is signed with a key not in the JWKS"),
        "{}",
        broker.log_since(mark)
    );
    let (still_cached, _) = token_login(&broker, Protocol::V5, "cached-kid-2", &jwt("rsa-2"));
    still_cached.unwrap();

    round_trip(&before, "devices/before/still-up", true);
    round_trip(&after, "devices/after/still-up", true);
    round_trip(&operator, "ops/after-rotation", true);
    assert_log_is_clean(&broker.log(), &[]);
}

/// Revalidation of JWTs verified locally (`oauth_jwt_revocation keys`, the default) keeps only
/// the key that verified each one: once the issuer withdraws that key, its clients are
/// disconnected at the next round (after the round's JWKS refresh, rate-limited to one per
/// 5 s) and the token is refused from then on; a client whose key stays published keeps its
/// session.
#[test]
fn a_withdrawn_signing_key_disconnects_its_clients_at_the_next_round() {
    let full = fixture_key("jwks-rotated.json");
    let jwks = FaultServer::start(Fault::Json(full));
    let options = jwt_options(&jwks.url("/jwks"))
        + "plugin_opt_oauth_revalidate_interval 1
";
    let broker = broker_with_operator(&options);
    broker.expect_log("loaded 3 verification key(s)", WAIT);
    let withdrawn_token = jwt("rsa-1");
    let withdrawn = token_login(&broker, Protocol::V5, "signed-by-rsa-1", &withdrawn_token).0;
    let withdrawn = withdrawn.unwrap();
    let kept = token_login(&broker, Protocol::V5, "signed-by-rsa-2", &jwt("rsa-2")).0.unwrap();
    assert_eq!(withdrawn.subscribe("devices/rsa-1/#", 0), 0x00);
    assert_eq!(kept.subscribe("devices/rsa-2/#", 0), 0x00);

    jwks.set(Fault::Json(jwks_after_rotation()));
    assert!(
        withdrawn.wait_disconnected(REFETCH_WAIT + MARGIN).is_some(),
        "the client of a withdrawn key is still connected; log:\n{}",
        broker.log()
    );
    broker.expect_log(
        "disconnecting client \"signed-by-rsa-1\": token no longer valid (token is signed with a key not in the JWKS)",
        WAIT,
    );
    round_trip(&kept, "devices/rsa-2/still-up", true);
    assert_refused_in_time(
        "a token of the withdrawn key",
        Protocol::V5,
        token_login(&broker, Protocol::V5, "signed-by-rsa-1", &withdrawn_token),
    );
    assert_log_is_clean(&broker.log(), &[withdrawn_token]);
}

/// `from` publishes at QoS 1 to `topic`, which `to` receives within [`WAIT`].
fn round_trip_via(from: &MqttClient, to: &MqttClient, topic: &str) {
    from.publish(topic, b"payload", 1, false);
    assert_eq!(to.recv(WAIT).expect("message delivered").topic, topic);
}

// ---------------------------------------------------------------------------------------------
// Bad client input
// ---------------------------------------------------------------------------------------------

/// The brokers the hostile-input rules are checked on: both run the same core behind a very
/// different MQTT front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mosquitto,
    Fallback,
}

impl Kind {
    /// Mosquitto enforces [MQTT-3.1.2-22] (3.1.1: no password without a username); rmqtt lets
    /// such a CONNECT through to the core, where the token decides.
    fn closes_311_password_without_username(self) -> bool {
        self == Self::Mosquitto
    }

    /// Mosquitto hands plugins the password as a C string; the fallback broker sees all bytes.
    fn reads_passwords_up_to_nul(self) -> bool {
        self == Self::Mosquitto
    }

    /// Mosquitto 2.0 refuses topics of more than 200 levels itself (DISCONNECT 0x82); rmqtt has
    /// no such limit, so the core's matcher sees them.
    fn limits_topic_levels(self) -> bool {
        self == Self::Mosquitto
    }

    /// rmqtt's router refuses filters with a `$` after the first character (SUBACK 0x80) before
    /// the core is asked; Mosquitto treats it as an ordinary character there.
    fn allows_dollar_inside_filters(self) -> bool {
        self == Self::Mosquitto
    }
}

/// A running broker of either kind.
enum Broker {
    Mosquitto(Mosquitto),
    Fallback(FallbackBroker),
}

impl Broker {
    fn port(&self) -> u16 {
        match self {
            Self::Mosquitto(broker) => broker.port(),
            Self::Fallback(broker) => broker.port(),
        }
    }

    fn log(&self) -> String {
        match self {
            Self::Mosquitto(broker) => broker.log(),
            Self::Fallback(broker) => broker.log(),
        }
    }

    /// Panics with the log if the broker process has exited.
    fn assert_running(&mut self) {
        let status = match self {
            Self::Mosquitto(broker) => broker.exited(),
            Self::Fallback(broker) => broker.exited(),
        };
        assert!(status.is_none(), "the broker exited ({status:?}):\n{}", self.log());
    }
}

/// A broker of `kind` with only token logins (no password file, no `token_username`: every
/// password is a token candidate), introspecting at `server`.
fn token_only_broker(kind: Kind, server: &FaultServer) -> Broker {
    let url = server.url("/introspect");
    match kind {
        Kind::Mosquitto => {
            let options = introspection_options(&url);
            Broker::Mosquitto(MosquittoConfig::new().start(|ports| {
                format!(
                    "listener {} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
                     plugin_opt_oauth_http_timeout_ms {}\n{options}",
                    ports.main,
                    plugin_path().display(),
                    HTTP_TIMEOUT.as_millis(),
                )
            }))
        }
        Kind::Fallback => Broker::Fallback(FallbackConfig::new().start(|ports| {
            format!(
                "[auth]\nintrospection_url = {}\nclient_id = \"mqtt-broker\"\n\
                 client_secret = {}\nhttp_timeout_ms = {}\n\n\
                 [[listener]]\nbind = \"127.0.0.1:{}\"\n\n[log]\nlevel = \"debug\"\n",
                toml_string(&url),
                toml_string(CLIENT_SECRET),
                HTTP_TIMEOUT.as_millis(),
                ports.main
            )
        })),
    }
}

/// Opaque tokens known to the fake authorization server, with their scopes.
struct Tokens {
    /// `%c` / `%u` placeholder grants.
    placeholders: String,
    /// Reads everything (sees whatever slips through).
    watcher: String,
    /// Reads and writes `devices/d1/#`.
    device: String,
}

impl Tokens {
    fn new() -> Self {
        Self {
            placeholders: unique_token("placeholders"),
            watcher: unique_token("watcher"),
            device: unique_token("device"),
        }
    }

    fn fault(&self) -> Fault {
        Fault::Introspection(vec![
            (
                self.placeholders.clone(),
                "mqtt:read:clients/%c/# mqtt:write:clients/%c/# mqtt:read:users/%u/# \
                 mqtt:write:users/%u/#"
                    .to_owned(),
            ),
            (self.watcher.clone(), "mqtt:read:#".to_owned()),
            (self.device.clone(), "mqtt:read:devices/d1/# mqtt:write:devices/d1/#".to_owned()),
        ])
    }
}

fn raw_login(
    port: u16,
    protocol: Protocol,
    client_id: &[u8],
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> RawSession {
    let mut connect = RawConnect::new(protocol, client_id);
    connect.username = username.map(<[u8]>::to_vec);
    connect.password = password.map(<[u8]>::to_vec);
    RawSession::connect(port, &connect)
}

fn refused(protocol: Protocol) -> RawOutcome {
    RawOutcome::Connack { code: not_authorized(protocol), properties: Default::default() }
}

/// A username or password field of a raw CONNECT (`None`: flag not set).
type Credential<'a> = Option<&'a [u8]>;

/// Passwords that cannot be tokens and missing credentials are refused without a call to the
/// authorization server (which here would accept any token it knows); a password is read up to
/// its first NUL byte, as documented, so `<token>\0junk` is that token and nothing more.
fn passwords_that_cannot_be_tokens_never_reach_the_authorization_server(kind: Kind) {
    let tokens = Tokens::new();
    let server = FaultServer::start(tokens.fault());
    let broker = token_only_broker(kind, &server);
    let user = Some(&b"user"[..]);
    let huge = vec![b'a'; 65_535];
    let mut nul_first = b"\0".to_vec();
    nul_first.extend_from_slice(tokens.device.as_bytes());
    let cases: [(&str, Protocol, Credential<'_>, Credential<'_>); 8] = [
        ("64 KiB password", Protocol::V5, user, Some(&huge)),
        ("NUL before the token", Protocol::V5, user, Some(&nul_first)),
        ("NUL before the token", Protocol::V311, user, Some(&nul_first)),
        ("empty username and password", Protocol::V311, Some(b""), Some(b"")),
        ("empty username and password", Protocol::V5, Some(b""), Some(b"")),
        ("username without password", Protocol::V5, user, None),
        ("username without password", Protocol::V311, user, None),
        ("no credentials", Protocol::V5, None, None),
    ];
    for (what, protocol, username, password) in cases {
        let session = raw_login(broker.port(), protocol, b"bad-input", username, password);
        assert_eq!(session.outcome(), &refused(protocol), "{what} ({protocol:?})");
    }
    assert_eq!(server.requests(), 0, "a password that cannot be a token was sent upstream");

    // The MQTT 5 control: a password without a username is allowed, a valid token is enough,
    // with exactly its grants (one introspection, cached from now on).
    let mut control = raw_login(
        broker.port(),
        Protocol::V5,
        b"no-username",
        None,
        Some(tokens.device.as_bytes()),
    );
    assert!(control.outcome().is_accepted(), "{:?}", control.outcome());
    assert_eq!(control.subscribe("devices/d1/#", 0), Some(0x00));
    assert_eq!(control.subscribe("#", 0), Some(0x87));
    assert_eq!(server.requests(), 1);

    // MQTT 3.1.1 forbids a password without a username [MQTT-3.1.2-22].
    let session = raw_login(
        broker.port(),
        Protocol::V311,
        b"bad-input",
        None,
        Some(tokens.device.as_bytes()),
    );
    if kind.closes_311_password_without_username() {
        assert_eq!(session.outcome(), &RawOutcome::Closed);
    } else {
        assert!(session.outcome().is_accepted(), "{:?}", session.outcome());
    }

    // `<token>\0junk`: Mosquitto hands plugins a C string, so it is <token> with exactly its
    // grants; the fallback broker sees every byte, which cannot be a token.
    let mut suffixed = tokens.device.as_bytes().to_vec();
    suffixed.extend_from_slice(b"\0mqtt:write:#");
    let mut suffixed_session =
        raw_login(broker.port(), Protocol::V5, b"nul-suffix", user, Some(&suffixed));
    if kind.reads_passwords_up_to_nul() {
        assert!(suffixed_session.outcome().is_accepted(), "{:?}", suffixed_session.outcome());
        assert_eq!(suffixed_session.subscribe("#", 0), Some(0x87));
        assert_eq!(suffixed_session.publish_qos1("elsewhere/x", b"x"), Some(0x87));
        assert_eq!(suffixed_session.publish_qos1("devices/d1/x", b"x"), Some(0x00));
        assert_eq!(control.recv_publish(WAIT).unwrap().topic, "devices/d1/x");
    } else {
        assert_eq!(suffixed_session.outcome(), &refused(Protocol::V5));
    }
    assert_eq!(server.requests(), 1, "the token is cached; nothing else was sent upstream");
    assert_log_is_clean(&broker.log(), std::slice::from_ref(&tokens.device));
}

/// Client ids and usernames with `+`, `#`, `/`, `$` cannot widen `%c`/`%u` grants (such grants
/// are dropped for them), and invalid UTF-8 in either never gets a session.
fn client_ids_and_usernames_with_wildcards_or_invalid_utf8_never_widen_a_grant(kind: Kind) {
    let tokens = Tokens::new();
    let server = FaultServer::start(tokens.fault());
    let mut broker = token_only_broker(kind, &server);
    let port = broker.port();
    let login = |id: &str, user: &str, token: &str| {
        MqttClient::connect(port, Protocol::V5, ConnectOptions::new(id).credentials(user, token))
            .unwrap_or_else(|e| panic!("{id:?}/{user:?} refused: {e:?}"))
    };
    let watcher = login("watcher", "watcher", &tokens.watcher);
    assert_eq!(watcher.subscribe("#", 0), 0x00);

    // Control: a plain id and username get exactly their own subtree.
    let victim = login("victim", "victim", &tokens.placeholders);
    assert_eq!(victim.subscribe("clients/victim/#", 0), 0x00);
    assert_eq!(victim.subscribe("users/victim/#", 0), 0x00);
    assert_eq!(victim.publish("clients/victim/x", b"own", 1, false), Some(0x00));
    assert_eq!(watcher.recv(WAIT).unwrap().topic, "clients/victim/x");
    assert_eq!(victim.recv(WAIT).unwrap().topic, "clients/victim/x");

    for id in ["+", "#", "a/b", "+/#", "victim/+", "$SYS", "$"] {
        let client = login(id, "plain", &tokens.placeholders);
        for filter in ["clients/+/#", "clients/#", "clients/victim/#", "#"] {
            assert_eq!(client.subscribe(filter, 0), 0x87, "client id {id:?} subscribing {filter}");
        }
        assert_eq!(client.publish("clients/victim/x", b"x", 1, false), Some(0x87), "{id:?}");
        if !id.contains(['+', '#', '/']) {
            // `$` is an ordinary character inside a topic: `clients/$SYS/#` is this client's own.
            let own =
                if kind.allows_dollar_inside_filters() || !id.contains('$') { 0x00 } else { 0x80 };
            assert_eq!(client.subscribe(&format!("clients/{id}/#"), 0), own, "{id:?}");
        }
    }
    // One client id per username: rmqtt answers a takeover that races the previous
    // connection's teardown with 0x88 (server unavailable), which is not what is tested here.
    for (index, user) in ["+", "#", "a/b", "victim/+"].into_iter().enumerate() {
        let client = login(&format!("user-test-{index}"), user, &tokens.placeholders);
        for filter in ["users/+/#", "users/#", "users/victim/#"] {
            assert_eq!(client.subscribe(filter, 0), 0x87, "username {user:?} subscribing {filter}");
        }
        assert_eq!(client.publish("users/victim/x", b"x", 1, false), Some(0x87), "{user:?}");
    }
    assert!(watcher.expect_nothing(QUIET), "a widened grant let a message through");
    assert!(victim.expect_nothing(QUIET), "a widened grant let a message through");

    // Invalid UTF-8 (a lone continuation byte, an overlong NUL, 0xFF) as client id or username:
    // Mosquitto refuses the connection before any plugin sees it.
    let requests = server.requests();
    for bad in [&b"\x80x"[..], &b"\xc0\x80"[..], &b"\xff"[..]] {
        for protocol in [Protocol::V311, Protocol::V5] {
            let token = Some(tokens.placeholders.as_bytes());
            let by_id = raw_login(broker.port(), protocol, bad, Some(b"u"), token);
            assert!(!by_id.outcome().is_accepted(), "client id {bad:?}: {:?}", by_id.outcome());
            let by_user = raw_login(broker.port(), protocol, b"utf8", Some(bad), token);
            assert!(!by_user.outcome().is_accepted(), "username {bad:?}: {:?}", by_user.outcome());
        }
    }
    assert_eq!(server.requests(), requests, "invalid UTF-8 reached the plugin");
    assert!(watcher.ping(WAIT));
    broker.assert_running();
    assert_log_is_clean(&broker.log(), &[tokens.placeholders.clone(), tokens.watcher.clone()]);
}

/// 64 KiB topics and filters and a SUBSCRIBE with 1000 filters get exact, per-filter answers:
/// inside the grant granted, outside refused, nothing delivered that should not be.
fn huge_topics_and_a_thousand_filter_subscribe_get_exact_answers(kind: Kind) {
    let tokens = Tokens::new();
    let server = FaultServer::start(tokens.fault());
    let mut broker = token_only_broker(kind, &server);
    let port = broker.port();
    let login = |protocol: Protocol, id: &str, token: &str| {
        MqttClient::connect(port, protocol, ConnectOptions::new(id).credentials(id, token))
            .unwrap_or_else(|e| panic!("{id:?} refused: {e:?}"))
    };
    let watcher = login(Protocol::V5, "watcher", &tokens.watcher);
    assert_eq!(watcher.subscribe("#", 0), 0x00);

    // 1000 filters in one SUBSCRIBE, a quarter of them each: inside the grant, a sibling's
    // subtree, a wildcard inside the grant, the whole tree.
    let filters: Vec<String> = (0..1000)
        .map(|i| match i % 4 {
            0 => format!("devices/d1/{i}"),
            1 => format!("devices/d2/{i}"),
            2 => format!("devices/d1/+/{i}"),
            _ => "#".to_owned(),
        })
        .collect();
    let pairs: Vec<(&str, u8)> = filters.iter().map(|f| (f.as_str(), 1)).collect();
    for (protocol, denied) in [(Protocol::V5, 0x87), (Protocol::V311, 0x80)] {
        let device = login(protocol, &format!("d1-{protocol:?}"), &tokens.device);
        let codes = device.try_subscribe(&pairs).unwrap();
        let expected: Vec<u8> =
            (0..1000).map(|i| if i % 4 % 2 == 0 { 0x01 } else { denied }).collect();
        assert_eq!(codes, expected, "{protocol:?}");
    }

    // 64 KiB topics and filters (the MQTT maximum, 65535 bytes): one long level, and 100
    // levels of 650 bytes (Mosquitto 2.0 allows at most 200 levels, see below).
    let device = login(Protocol::V5, "d1-topics", &tokens.device);
    let long = |prefix: &str, level: usize| {
        let mut topic = prefix.to_owned();
        while topic.len() + level < 65_535 {
            topic.push_str(&"a".repeat(level - 1));
            topic.push('/');
        }
        topic.push_str(&"z".repeat(65_535 - topic.len()));
        topic
    };
    for level in [65_535, 651] {
        let inside = long("devices/d1/", level);
        let outside = long("devices/d2/", level);
        assert_eq!((inside.len(), outside.len()), (65_535, 65_535));
        assert_eq!(device.publish(&inside, b"in", 1, false), Some(0x00), "{level}-byte levels");
        let message = watcher.recv(WAIT).expect("the long topic inside the grant is delivered");
        assert_eq!(message.topic, inside);
        assert_eq!(device.publish(&outside, b"out", 1, false), Some(0x87), "{level}-byte levels");
        assert_eq!(device.subscribe(&inside, 0), 0x00, "{level}-byte levels");
        assert_eq!(device.subscribe(&outside, 0), 0x87, "{level}-byte levels");
    }
    // Thousands of levels: Mosquitto itself refuses the topic (DISCONNECT 0x82, protocol
    // error) before any ACL check; on the fallback broker the core matches it level by level,
    // inside the grant and outside. Either way the broker and every other client carry on.
    let deep = long("devices/d1/", 2);
    let deep_outside = long("devices/d2/", 2);
    if kind.limits_topic_levels() {
        let refused = device.try_publish(&deep, b"deep", 1, false);
        assert!(refused.is_err(), "a 32768-level topic was accepted: {refused:?}");
    } else {
        assert_eq!(device.publish(&deep_outside, b"out", 1, false), Some(0x87));
        assert_eq!(device.publish(&deep, b"deep", 1, false), Some(0x00));
        assert_eq!(watcher.recv(WAIT).expect("deep topic delivered").topic, deep);
    }
    assert!(watcher.expect_nothing(QUIET), "a refused publish was delivered");
    let again = login(Protocol::V311, "d1-again", &tokens.device);
    round_trip_via(&again, &watcher, "devices/d1/after-huge-topics");
    broker.assert_running();
    assert_log_is_clean(&broker.log(), &[tokens.device.clone(), tokens.watcher.clone()]);
}

// ---------------------------------------------------------------------------------------------
// The hostile-input rules on both brokers
// ---------------------------------------------------------------------------------------------

#[test]
fn passwords_that_cannot_be_tokens_never_reach_the_authorization_server_on_mosquitto() {
    passwords_that_cannot_be_tokens_never_reach_the_authorization_server(Kind::Mosquitto);
}

#[test]
fn passwords_that_cannot_be_tokens_never_reach_the_authorization_server_on_the_fallback_broker() {
    passwords_that_cannot_be_tokens_never_reach_the_authorization_server(Kind::Fallback);
}

#[test]
fn client_ids_and_usernames_with_wildcards_or_invalid_utf8_never_widen_a_grant_on_mosquitto() {
    client_ids_and_usernames_with_wildcards_or_invalid_utf8_never_widen_a_grant(Kind::Mosquitto);
}

#[test]
fn client_ids_and_usernames_with_wildcards_or_invalid_utf8_never_widen_a_grant_on_the_fallback_broker()
 {
    client_ids_and_usernames_with_wildcards_or_invalid_utf8_never_widen_a_grant(Kind::Fallback);
}

#[test]
fn huge_topics_and_a_thousand_filter_subscribe_get_exact_answers_on_mosquitto() {
    huge_topics_and_a_thousand_filter_subscribe_get_exact_answers(Kind::Mosquitto);
}

#[test]
fn huge_topics_and_a_thousand_filter_subscribe_get_exact_answers_on_the_fallback_broker() {
    huge_topics_and_a_thousand_filter_subscribe_get_exact_answers(Kind::Fallback);
}
