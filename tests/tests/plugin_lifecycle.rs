//! Token lifecycle on live sessions, in a real Mosquitto 2.0 with the real oidc-provider:
//! expiry and revocation disconnects, MQTT 5 enhanced authentication and re-authentication.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp, TokenRequest};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, MqttClient, Protocol, RawOutcome, raw_connect_v5_auth,
};

const WAIT: Duration = Duration::from_secs(5);

fn broker(idp: &Idp, extra: &str) -> Mosquitto {
    MosquittoConfig::new().start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id {BROKER_CLIENT_ID}\n\
             plugin_opt_oauth_client_secret {BROKER_CLIENT_SECRET}\n{extra}",
            ports.main,
            plugin_path().display(),
            idp.introspection_url(),
        )
    })
}

fn connect(port: u16, client_id: &str, token: &str) -> MqttClient {
    MqttClient::connect(
        port,
        Protocol::V5,
        ConnectOptions::new(client_id).credentials(client_id, token),
    )
    .unwrap_or_else(|e| panic!("{client_id} refused: {e:?}"))
}

#[test]
fn client_is_disconnected_when_its_token_expires_and_can_come_back_with_a_new_one() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "plugin_opt_oauth_leeway 0\n");
    let token = idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#"]).ttl_secs(3));
    let exp = idp.introspect(&token)["exp"].as_u64().unwrap();
    let client = connect(mosquitto.port(), "device-1", &token);
    let disconnected = client.wait_disconnected(Duration::from_secs(8));
    let after_exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .saturating_sub(Duration::from_secs(exp));
    assert!(disconnected.is_some(), "still connected after its token expired");
    assert!(after_exp < Duration::from_millis(1500), "disconnected {after_exp:?} after exp");
    mosquitto.expect_log("disconnecting client \"device-1\": its token has expired", WAIT);

    let renewed = idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#"]).ttl_secs(60));
    let client = connect(mosquitto.port(), "device-1", &renewed);
    assert_eq!(client.publish("t/back", b"x", 1, false), Some(0x10));
}

/// Threads of process `pid` (`/proc/<pid>/task`).
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

#[test]
fn broker_is_left_on_its_own_thread_while_the_plugin_has_nothing_to_do() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "");
    let first = idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#"]));
    let device = connect(mosquitto.port(), "device-1", &first);
    assert_eq!(device.publish("t/1", b"x", 1, false), Some(0x10));

    // The HTTP client goes 10 s after its last call; no other thread has work.
    let deadline = Instant::now() + Duration::from_secs(30);
    while thread_count(mosquitto.pid()) > 1 {
        assert!(Instant::now() < deadline, "{} threads after 30 s", thread_count(mosquitto.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    mosquitto.expect_log("HTTP client let go", WAIT);
    assert_eq!(device.publish("t/2", b"x", 1, false), Some(0x10));

    // The next cold token sets the client up again.
    let second = idp.token(&TokenRequest::new("device-2", &["mqtt:write:t/#"]));
    let other = connect(mosquitto.port(), "device-2", &second);
    assert_eq!(other.publish("t/3", b"x", 1, false), Some(0x10));
    assert_eq!(other.publish("elsewhere", b"x", 1, false), Some(0x87));
}

#[test]
fn broker_checking_tokens_against_a_key_file_never_runs_a_second_thread() {
    let idp = Idp::start();
    let audience = "urn:mqtt:broker";
    let config = MosquittoConfig::new();
    let jwks = config.write_file("jwks.json", idp.jwks().to_string());
    let mosquitto = config.start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\nplugin {}\n\
             plugin_opt_oauth_jwks_file {}\nplugin_opt_oauth_issuer {}\n\
             plugin_opt_oauth_audience {audience}\nplugin_opt_oauth_revalidate_interval 1\n",
            ports.main,
            plugin_path().display(),
            jwks.display(),
            idp.issuer(),
        )
    });
    assert_eq!(thread_count(mosquitto.pid()), 1, "a thread at start");
    let token = idp.jwt_token("device-1", &["mqtt:write:t/#"], audience);
    let device = connect(mosquitto.port(), "device-1", &token);
    assert_eq!(device.publish("t/1", b"x", 1, false), Some(0x10));
    assert_eq!(device.publish("elsewhere", b"x", 1, false), Some(0x87));
    // Revalidation rounds would be due every second; with nothing to ask, none starts.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(thread_count(mosquitto.pid()), 1, "a thread after a login");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(device.publish("t/2", b"x", 1, false), Some(0x10));
}

#[test]
fn cold_login_beyond_the_wait_budget_is_refused_now_and_its_reconnect_answered_from_the_cache() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "plugin_opt_oauth_login_wait_budget_ms 0\n");
    // Passes are known once the broker ticks.
    mosquitto.expect_log("broker ticks: logins waiting for the authorization server", WAIT);
    let delayed_logins = mosquitto.log().contains("mosquitto version 2.1");
    let token = idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#"]));
    idp.reset_stats();
    let options = || ConnectOptions::new("device-1").credentials("device-1", &token);
    if !delayed_logins {
        // Mosquitto 2.0 must answer at once: the broker thread may not wait at all.
        let refused = MqttClient::connect(mosquitto.port(), Protocol::V5, options());
        assert_eq!(refused.err().and_then(|e| e.code()), Some(0x87));
        mosquitto.expect_log(
            "client \"device-1\" refused for now: the broker already waited 0 ms",
            WAIT,
        );
        mosquitto.expect_log("token of postponed login \"device-1\" checked: valid, cached", WAIT);
    }
    // 2.1 delays the login instead; either way the token is introspected once.
    let device = connect(mosquitto.port(), "device-1", &token);
    assert_eq!(device.publish("t/1", b"x", 1, false), Some(0x10));
    assert_eq!(device.publish("elsewhere", b"x", 1, false), Some(0x87));
    assert_eq!(idp.stats().introspections, 1);
}

#[test]
fn durable_session_keeps_its_subscriptions_across_an_expiry_kick() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "plugin_opt_oauth_leeway 0\n");
    let scopes = ["mqtt:read:cmd/device-1/#"];
    let durable = |token: &str| {
        MqttClient::connect(
            mosquitto.port(),
            Protocol::V311,
            ConnectOptions::new("device-1").credentials("device-1", token).clean(false),
        )
        .unwrap()
    };
    let token = idp.token(&TokenRequest::new("device-1", &scopes).ttl_secs(3));
    let device = durable(&token);
    assert_eq!(device.subscribe("cmd/device-1/#", 1), 0x01);
    assert!(device.wait_disconnected(Duration::from_secs(8)).is_some(), "not kicked at exp");
    mosquitto.expect_log("disconnecting client \"device-1\": its token has expired", WAIT);

    // Mosquitto re-checked the session's subscriptions while kicking it; they must survive,
    // or the renewed connection would silently receive nothing.
    let renewed = idp.token(&TokenRequest::new("device-1", &scopes).ttl_secs(60));
    let device = durable(&renewed);
    assert!(device.connack().session_present);
    let sender =
        connect(mosquitto.port(), "device-3", &idp.opaque_token("device-3", &["mqtt:write:cmd/#"]));
    assert_eq!(sender.publish("cmd/device-1/reboot", b"now", 1, false), Some(0x00));
    let command = device.recv(WAIT).expect("the renewed session lost its subscription");
    assert_eq!(
        (command.topic.as_str(), command.payload.as_slice()),
        ("cmd/device-1/reboot", &b"now"[..])
    );
}

#[test]
fn revoked_token_disconnects_its_client_within_the_revalidate_interval() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "plugin_opt_oauth_revalidate_interval 1\n");
    let token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let keeper_token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    let revoked = connect(mosquitto.port(), "device-2", &token);
    let keeper = connect(mosquitto.port(), "device-3", &keeper_token);
    revoke_and_expect_only_its_client_out(&idp, &mosquitto, &token, &revoked, &keeper);
}

/// Revokes `device-2`'s `token` at `idp`: its client `revoked` is disconnected within the
/// 1 s interval (and a margin), the log says why, `keeper` stays connected, and the token
/// cannot log in again (the revocation is cached, even for a JWT still valid by its
/// signature).
fn revoke_and_expect_only_its_client_out(
    idp: &Idp,
    mosquitto: &Mosquitto,
    token: &str,
    revoked: &MqttClient,
    keeper: &MqttClient,
) {
    idp.revoke("device-2", token);
    let started = Instant::now();
    assert!(
        revoked.wait_disconnected(Duration::from_secs(6)).is_some(),
        "client of a revoked token still connected"
    );
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    mosquitto.expect_log(
        "disconnecting client \"device-2\": token no longer valid (token is not active)",
        WAIT,
    );
    assert!(keeper.ping(WAIT), "the other client was disconnected too");
    // Refused, also once the cached rejection is gone (flushed by a reload): a revoked JWT's
    // signature stays valid, so only the remembered revocation can refuse it.
    mosquitto.reload();
    mosquitto.expect_log("reload: token cache flushed", WAIT);
    let again = MqttClient::connect(
        mosquitto.port(),
        Protocol::V5,
        ConnectOptions::new("device-2").credentials("device-2", token),
    );
    assert_eq!(again.err().and_then(|e| e.code()), Some(0x87));
}

#[test]
fn with_jwt_revocation_introspect_a_revoked_jwt_disconnects_its_client() {
    let idp = Idp::start();
    let audience = "urn:mqtt:broker";
    let mosquitto = broker(
        &idp,
        &format!(
            "plugin_opt_oauth_jwks_url {}
plugin_opt_oauth_issuer {}
             plugin_opt_oauth_audience {audience}
plugin_opt_oauth_jwt_revocation introspect
             plugin_opt_oauth_revalidate_interval 1
",
            idp.jwks_url(),
            idp.issuer(),
        ),
    );
    let token = idp.jwt_token("device-2", &["mqtt:read:#"], audience);
    let keeper_token = idp.jwt_token("device-3", &["mqtt:read:#"], audience);
    let before = idp.stats().introspections;
    let revoked = connect(mosquitto.port(), "device-2", &token);
    let keeper = connect(mosquitto.port(), "device-3", &keeper_token);
    assert_eq!(idp.stats().introspections, before, "JWT logins are verified locally");
    // Re-checked (introspected) every second while valid.
    let until = Instant::now() + WAIT;
    while idp.stats().introspections < before + 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(idp.stats().introspections >= before + 2, "no revalidation by introspection");
    assert!(revoked.ping(WAIT), "disconnected while its token was valid");
    revoke_and_expect_only_its_client_out(&idp, &mosquitto, &token, &revoked, &keeper);
}

#[test]
fn reload_keeps_sessions_working() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "");
    let token = idp.opaque_token("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]);
    let client = connect(mosquitto.port(), "device-1", &token);
    assert_eq!(client.subscribe("t/#", 0), 0x00);
    mosquitto.reload();
    mosquitto.expect_log("reload: token cache flushed; 1 client session(s) kept", WAIT);
    client.publish("t/after-reload", b"x", 0, false);
    let message = client.recv(WAIT);
    assert!(message.is_some(), "not delivered after reload; log:\n{}", mosquitto.log());
    assert_eq!(message.unwrap().topic, "t/after-reload");
    assert_eq!(client.publish("elsewhere", b"x", 1, false), Some(0x87));
}

#[test]
fn mqtt5_enhanced_auth_carries_the_token_and_reauth_swaps_grants() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "");
    let first = idp.opaque_token("device-1", &["mqtt:write:a/#"]);
    let mut session =
        raw_connect_v5_auth(mosquitto.port(), "device-1", "OAUTHBEARER", first.as_bytes());
    assert!(session.outcome().is_accepted(), "{:?}", session.outcome());
    assert_eq!(session.publish_qos1("a/x", b"1"), Some(0x10));
    assert_eq!(session.publish_qos1("b/x", b"1"), Some(0x87));

    // Re-authenticate (AUTH 0x19) with an RFC 7628 client response carrying a token with
    // other scopes: same connection, new grants at once.
    let second = idp.opaque_token("device-1", &["mqtt:write:b/#"]);
    let response = format!("n,,\x01auth=Bearer {second}\x01\x01");
    let outcome = session.reauth("OAUTHBEARER", response.as_bytes());
    assert!(matches!(outcome, RawOutcome::Auth { code: 0x00, .. }), "{outcome:?}");
    assert_eq!(session.publish_qos1("b/x", b"2"), Some(0x10));
    assert_eq!(session.publish_qos1("a/x", b"2"), Some(0x87));
    mosquitto.expect_log("client \"device-1\" re-authenticated with a new token", WAIT);

    // A failed re-authentication ends the connection.
    let outcome = session.reauth("OAUTHBEARER", b"not-a-valid-token");
    let ended = match outcome {
        RawOutcome::Closed | RawOutcome::Disconnect { .. } | RawOutcome::Connack { .. } => true,
        _ => session.wait_closed(WAIT).is_some(),
    };
    assert!(ended, "connection survived a failed re-authentication: {outcome:?}");
    assert!(session.publish_qos1("b/x", b"3").is_none());
}

#[test]
fn unknown_auth_methods_and_bad_tokens_are_refused() {
    let idp = Idp::start();
    let mosquitto = broker(&idp, "");
    let unknown = raw_connect_v5_auth(mosquitto.port(), "d1", "SCRAM-SHA-1", b"x");
    assert_eq!(unknown.outcome().code(), Some(0x8C));
    let bad = raw_connect_v5_auth(
        mosquitto.port(),
        "d2",
        "OAUTHBEARER",
        b"n,,\x01auth=Bearer nope\x01\x01",
    );
    assert_eq!(bad.outcome().code(), Some(0x87));
}
