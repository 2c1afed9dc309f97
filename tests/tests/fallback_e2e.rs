//! The fallback broker (rmqtt + the auth core) as a real process, with the real oidc-provider
//! and real MQTT clients: the scenarios shared with the Mosquitto plugin, then what only the
//! fallback broker has (disconnect on revocation, TLS and WebSocket listeners, its own
//! configuration handling, shutdown).
//!
//! Needs the binary: `cargo build -p fallback-broker`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::fallback::{
    FallbackBroker, FallbackConfig, FallbackLauncher, auth_lines, run_cli, toml_string,
};
use mosquitto_oauth_e2e::idp::{BOUND_DEVICE, Idp, TokenRequest};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, ConnectRefused, MqttClient, Packet, Protocol, RawConnect, RawRead, RawSession,
    encode_publish, encode_subscribe,
};
use mosquitto_oauth_e2e::scenarios::{self, QUIET, WAIT, connect, connected};
use mosquitto_oauth_e2e::tls::{
    client_certificate, make_certificates, mosquitto_client, publish_over_tls,
    publish_without_certificate,
};

fn launcher() -> FallbackLauncher {
    FallbackLauncher::default()
}

// ---------------------------------------------------------------------------------------------
// The plugin's scenarios, with the same outcomes (differences are spelled out in `scenarios`).
// ---------------------------------------------------------------------------------------------

#[test]
fn opaque_token_scopes_decide_publish_and_subscribe() {
    scenarios::opaque_token_scopes_decide_publish_and_subscribe(&launcher());
}

#[test]
fn sys_topics_need_an_explicit_grant_and_carry_the_counters() {
    scenarios::sys_topics_need_an_explicit_grant_and_carry_the_counters(&launcher());
}

#[test]
fn each_issuer_admits_its_own_tokens_and_none_vouches_for_the_other() {
    scenarios::each_issuer_admits_its_own_tokens_and_none_vouches_for_the_other(&launcher());
}

#[test]
fn a_topic_alias_is_checked_as_the_topic_it_stands_for() {
    scenarios::a_topic_alias_is_checked_as_the_topic_it_stands_for(&launcher());
}

#[test]
fn shared_subscriptions_are_checked_on_their_filter_and_share_the_messages() {
    scenarios::shared_subscriptions_are_checked_on_their_filter_and_share_the_messages(&launcher());
}

#[test]
fn delivery_is_filtered_by_the_current_read_grants() {
    scenarios::delivery_is_filtered_by_the_current_read_grants(&launcher());
}

#[test]
fn jwt_access_tokens_are_verified_locally_with_the_provider_keys() {
    scenarios::jwt_access_tokens_are_verified_locally_with_the_provider_keys(&launcher());
}

#[test]
fn revoked_token_is_refused_once_its_cache_entry_is_gone() {
    scenarios::revoked_token_is_refused_once_its_cache_entry_is_gone(&launcher());
}

#[test]
fn password_file_users_and_token_devices_share_a_broker() {
    scenarios::password_file_users_and_token_devices_share_a_broker(&launcher());
}

#[test]
fn authorization_server_outage_refuses_new_logins_but_not_connected_clients() {
    scenarios::authorization_server_outage_refuses_new_logins_but_not_connected_clients(&launcher());
}

#[test]
fn wills_are_checked_against_write_grants_at_connect() {
    scenarios::wills_are_checked_against_write_grants(&launcher());
}

#[test]
fn what_the_broker_does_after_a_disconnect_follows_the_token() {
    scenarios::what_the_broker_does_after_a_disconnect_follows_the_token(&launcher());
}

#[test]
fn expired_token_stops_every_publish_and_delivery() {
    scenarios::expired_token_stops_every_publish_and_delivery(&launcher());
}

#[test]
fn expired_token_disconnects_its_client_at_exp() {
    scenarios::expired_token_disconnects_its_client_at_exp(&launcher());
}

#[test]
fn binary_and_oversized_passwords_are_refused_without_harm() {
    scenarios::binary_and_oversized_passwords_are_refused_without_harm(&launcher());
}

// ---------------------------------------------------------------------------------------------
// Fallback broker only.
// ---------------------------------------------------------------------------------------------

/// A broker on `config`'s main port with introspection at `idp`, `extra` appended to the file.
fn start(idp: &Idp, config: FallbackConfig, auth_extra: &str, extra: &str) -> FallbackBroker {
    let auth = auth_lines(idp);
    config.start(|ports| {
        format!(
            "[auth]\n{auth}{auth_extra}\n[[listener]]\nbind = \"127.0.0.1:{}\"\n{extra}",
            ports.main
        )
    })
}

#[test]
fn revalidation_disconnects_a_client_whose_token_was_revoked() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "revalidate_interval = 1\n", "");
    let token = idp.opaque_token("device-1", &["mqtt:read:r/#", "mqtt:write:r/#"]);
    let will = ConnectOptions::new("device-1").credentials("x", &token).will("r/will", b"gone");
    let client = MqttClient::connect(broker.port(), Protocol::V5, will).unwrap();
    let watcher_token = idp.opaque_token("device-2", &["mqtt:read:r/#"]);
    let watcher = connected(broker.port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("r/#", 0), 0x00);
    // Still valid at the first revalidations.
    assert!(client.wait_disconnected(Duration::from_millis(2_500)).is_none());
    idp.revoke("device-1", &token);
    let revoked = Instant::now();
    let end = client.wait_disconnected(Duration::from_secs(5)).expect("disconnected");
    assert!(revoked.elapsed() < Duration::from_millis(2_500), "took {:?}", revoked.elapsed());
    // DISCONNECT 0x87 before the socket closes (rmqtt 0.24 wrote it after closing; patched in
    // vendor/rmqtt).
    assert_eq!(end.reason_code, Some(0x87), "{end:?}");
    broker.expect_log(
        "disconnecting client \"device-1\": token no longer valid (token is not active)",
        WAIT,
    );
    // Its will is not published: the token is no longer good for writing.
    assert!(watcher.expect_nothing(QUIET));
    broker.expect_log("will of \"device-1\" on \"r/will\" dropped", WAIT);
}

#[test]
fn with_jwt_revocation_introspect_a_revoked_jwt_disconnects_its_client() {
    let idp = Idp::start();
    let audience = "urn:mqtt:broker";
    let auth = format!(
        "revalidate_interval = 1\njwks_url = \"{}\"\nissuer = \"{}\"\naudience = \"{audience}\"\n\
         jwt_revocation = \"introspect\"\n",
        idp.jwks_url(),
        idp.issuer()
    );
    let broker = start(&idp, FallbackConfig::new(), &auth, "");
    let token = idp.jwt_token("device-1", &["mqtt:read:r/#"], audience);
    let before = idp.stats().introspections;
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    assert_eq!(idp.stats().introspections, before, "JWT logins are verified locally");
    // Still valid (and introspected) at the first revalidations.
    assert!(client.wait_disconnected(Duration::from_millis(2_500)).is_none());
    assert!(idp.stats().introspections > before, "no revalidation by introspection");
    idp.revoke("device-1", &token);
    let revoked = Instant::now();
    client.wait_disconnected(Duration::from_secs(5)).expect("disconnected");
    assert!(revoked.elapsed() < Duration::from_millis(2_500), "took {:?}", revoked.elapsed());
    broker.expect_log(
        "disconnecting client \"device-1\": token no longer valid (token is not active)",
        WAIT,
    );
    // Still refused once the cached rejection is flushed: its signature is valid, only the
    // remembered revocation can refuse it.
    broker.reload();
    assert_eq!(
        connect(broker.port(), Protocol::V5, "device-1", &token).err(),
        Some(ConnectRefused::Code(0x87))
    );
}

#[test]
fn a_topic_alias_the_client_may_not_use_ends_the_connection_as_mosquitto_does() {
    let idp = Idp::start();
    let config = FallbackConfig::new();
    let without_aliases = config.ports().second;
    let broker = start(
        &idp,
        config,
        "",
        &format!(
            "[[listener]]\ntype = \"tcp\"\nbind = \"127.0.0.1:{without_aliases}\"\n\
             max_topic_aliases = 0\n"
        ),
    );
    let watcher_token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let watcher = connected(broker.port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("#", 1), 0x01);
    let mut raw = RawConnect::new(Protocol::V5, "device-1");
    raw.username = Some(b"x".to_vec());
    raw.password = Some(idp.opaque_token("device-1", &["mqtt:write:#"]).into_bytes());
    // PUBLISH QoS 1, packet id 1, payload "x", with topic "" or "a" and one Topic Alias.
    let publish = |topic: &[u8], alias: u16| {
        let mut packet = vec![0x32, (9 + topic.len()) as u8, 0, topic.len() as u8];
        packet.extend_from_slice(topic);
        packet.extend_from_slice(&[0, 1, 3, 0x23]);
        packet.extend_from_slice(&alias.to_be_bytes());
        packet.push(b'x');
        packet
    };
    // The listener's default Topic Alias Maximum is 10. rmqtt 0.24 would take an alias never set
    // (aliases off) for a message on "", which `#` matches, and answer the rest with 0x81/0x83.
    let cases: [(u16, Vec<u8>, u8, &str); 4] = [
        (broker.port(), publish(b"", 5), 0x82, "topic alias 5 was never set"),
        (
            broker.port(),
            publish(b"a", 11),
            0x94,
            "topic alias 11 is above the Topic Alias Maximum 10",
        ),
        (broker.port(), publish(b"a", 0), 0x82, ""),
        (
            without_aliases,
            publish(b"", 5),
            0x94,
            "topic alias 5 is above the Topic Alias Maximum 0",
        ),
    ];
    for (port, packet, code, why) in cases {
        let mut publisher = RawSession::connect(port, &raw);
        assert!(publisher.outcome().is_accepted(), "{:?}", publisher.outcome());
        assert!(publisher.send_raw(&packet));
        match publisher.read_packet(WAIT) {
            RawRead::Packet(Packet::Disconnect { code: got, properties }) => {
                assert_eq!(got, code, "{packet:?}");
                if !why.is_empty() {
                    assert_eq!(properties.reason_string(), Some(why));
                }
            }
            answer => panic!("{packet:?}: {answer:?}"),
        }
        assert!(watcher.expect_nothing(QUIET), "delivered to a # subscriber");
    }
}

#[test]
fn listeners_announce_and_honour_topic_aliases_and_a_keep_alive_maximum() {
    use mosquitto_oauth_e2e::mqtt::{PropertyValue, property};
    let idp = Idp::start();
    let config = FallbackConfig::new();
    let limited = config.ports().second;
    let broker = start(
        &idp,
        config,
        "",
        &format!(
            "[[listener]]\ntype = \"tcp\"\nbind = \"127.0.0.1:{limited}\"\nmax_topic_aliases = 2\n\
             max_keepalive = 30\n"
        ),
    );
    let token = idp.opaque_token("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]);
    let mut raw = RawConnect::new(Protocol::V5, "device-1");
    raw.username = Some(b"x".to_vec());
    raw.password = Some(token.clone().into_bytes());
    raw.keep_alive_secs = 60;
    let connack = |port| match RawSession::connect(port, &raw).outcome() {
        mosquitto_oauth_e2e::mqtt::RawOutcome::Connack { code: 0, properties } => {
            properties.clone()
        }
        other => panic!("not accepted: {other:?}"),
    };
    // Mosquitto's defaults on the first listener: 10 aliases, the keep alive asked for (rmqtt
    // states it in CONNACK even when it grants it unchanged; Mosquitto leaves it out).
    let defaults = connack(broker.port());
    assert_eq!(defaults.get(property::TOPIC_ALIAS_MAXIMUM), Some(&PropertyValue::U16(10)));
    assert_eq!(defaults.get(property::SERVER_KEEP_ALIVE), Some(&PropertyValue::U16(60)));
    let limits = connack(limited);
    assert_eq!(limits.get(property::TOPIC_ALIAS_MAXIMUM), Some(&PropertyValue::U16(2)));
    assert_eq!(limits.get(property::SERVER_KEEP_ALIVE), Some(&PropertyValue::U16(30)));

    // A topic alias set once stands for its topic afterwards; its grants still decide.
    let reader_token = idp.opaque_token("device-2", &["mqtt:read:t/#"]);
    let reader = connected(broker.port(), Protocol::V5, "reader", &reader_token);
    assert_eq!(reader.subscribe("t/#", 1), 0x01);
    raw.client_id = b"aliaser".to_vec();
    let mut publisher = RawSession::connect(broker.port(), &raw);
    assert!(publisher.outcome().is_accepted());
    // PUBLISH QoS 0 "t/a" setting Topic Alias 1, then one by the alias alone.
    assert!(publisher.send_raw(&[0x30, 10, 0, 3, b't', b'/', b'a', 3, 0x23, 0, 1, b'1']));
    assert!(publisher.send_raw(&[0x30, 7, 0, 0, 3, 0x23, 0, 1, b'2']));
    for payload in [b"1", b"2"] {
        let message = reader.recv(WAIT).expect("delivered");
        assert_eq!((message.topic.as_str(), message.payload.as_slice()), ("t/a", &payload[..]));
    }
}

/// MQTT 5 clients learn why the server ends their connection: too many QoS 2 messages in
/// flight is DISCONNECT 0x93, a takeover by the same client id 0x8E (rmqtt 0.24 wrote its
/// DISCONNECT after closing the socket, and called a takeover "not authorized"; patched in
/// vendor/rmqtt).
#[test]
fn the_server_says_why_it_ends_a_connection() {
    use mosquitto_oauth_e2e::mqtt::{PropertyValue, property, reason};
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "");
    let token = idp.opaque_token("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]);
    let mut raw = RawConnect::new(Protocol::V5, "device-1");
    raw.username = Some(b"x".to_vec());
    raw.password = Some(token.clone().into_bytes());
    let mut publisher = RawSession::connect(broker.port(), &raw);
    let receive_maximum = match publisher.outcome() {
        mosquitto_oauth_e2e::mqtt::RawOutcome::Connack { code: 0, properties } => {
            match properties.get(property::RECEIVE_MAXIMUM) {
                Some(PropertyValue::U16(maximum)) if *maximum <= 1_000 => *maximum,
                other => panic!("receive maximum {other:?}"),
            }
        }
        other => panic!("not accepted: {other:?}"),
    };
    // QoS 2 PUBLISHes on "t/q" that are never released: each stays in flight.
    for packet_id in 1..=receive_maximum + 1 {
        let [high, low] = packet_id.to_be_bytes();
        assert!(publisher.send_raw(&[0x34, 9, 0, 3, b't', b'/', b'q', high, low, 0, b'x']));
    }
    let mut received = 0;
    let ended = loop {
        match publisher.read_packet(WAIT) {
            RawRead::Packet(Packet::Pubrec { code: 0x00 | 0x10, .. }) => received += 1,
            other => break other,
        }
    };
    assert_eq!(received, receive_maximum, "{ended:?}");
    assert!(
        matches!(ended, RawRead::Packet(Packet::Disconnect { code: 0x93, .. })),
        "expected DISCONNECT 0x93 (receive maximum exceeded): {ended:?}"
    );

    let first = connected(broker.port(), Protocol::V5, "device-1", &token);
    let _second = connected(broker.port(), Protocol::V5, "device-1", &token);
    let end = first.wait_disconnected(WAIT).expect("taken over");
    assert_eq!(end.reason_code, Some(reason::SESSION_TAKEN_OVER), "{end:?}");
}

#[test]
fn a_will_is_dropped_when_its_token_expired_first() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "");
    let token = idp.token(&TokenRequest::new("device-1", &["mqtt:write:w/#"]).ttl_secs(3));
    let options = ConnectOptions::new("device-1").credentials("x", &token).will("w/1", b"gone");
    let client = MqttClient::connect(broker.port(), Protocol::V311, options).unwrap();
    let watcher_token = idp.opaque_token("device-2", &["mqtt:read:w/#"]);
    let watcher = connected(broker.port(), Protocol::V311, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("w/#", 1), 0x01);
    let end = client.wait_disconnected(Duration::from_secs(8)).expect("disconnected at exp");
    assert_eq!(end.reason_code, None, "MQTT 3.1.1 has no server DISCONNECT");
    assert!(watcher.expect_nothing(Duration::from_secs(1)));
}

#[test]
fn mqtt5_password_without_username_and_client_id_binding() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "client_id_claim = \"sub\"\n", "");
    let token = idp.opaque_token("device-1", &["mqtt:read:a/#"]);
    let mut raw = RawConnect::new(Protocol::V5, "device-1");
    raw.password = Some(token.clone().into_bytes());
    let session = RawSession::connect(broker.port(), &raw);
    assert!(session.outcome().is_accepted(), "{:?}", session.outcome());
    // The token's sub is device-1: another client id is refused.
    assert_eq!(
        connect(broker.port(), Protocol::V5, "device-9", &token).err(),
        Some(ConnectRefused::Code(0x87))
    );
    broker.expect_log("MQTT client id does not match the token's sub claim", WAIT);
}

#[test]
fn retained_messages_are_kept_and_read_checked() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "");
    let writer_token = idp.opaque_token("device-1", &["mqtt:write:state/#"]);
    let writer = connected(broker.port(), Protocol::V5, "writer", &writer_token);
    assert_eq!(writer.publish("state/a", b"on", 1, true), Some(0x00));
    assert_eq!(writer.publish("state/b", b"off", 1, true), Some(0x00));
    // Stored by the engine's retained-message store and delivered on subscribe, through the
    // same per-delivery read check as live messages.
    let reader_token = idp.opaque_token("device-2", &["mqtt:read:state/#"]);
    let reader = connected(broker.port(), Protocol::V5, "reader", &reader_token);
    assert_eq!(reader.subscribe("state/#", 1), 0x01);
    let mut topics: Vec<String> =
        (0..2).map(|_| reader.recv(WAIT).expect("retained message").topic).collect();
    topics.sort();
    assert_eq!(topics, ["state/a", "state/b"]);
}

/// The broker's CLI: `generate-config` prints a valid default, `check-config` names the key.
#[test]
fn cli_generates_and_checks_configurations() {
    let output = run_cli(&["generate-config"]);
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("default.toml");
    std::fs::write(&path, &output.stdout).unwrap();
    let checked = run_cli(&["check-config", path.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("valid"));

    let text = String::from_utf8(output.stdout).unwrap().replace("level = \"info\"", "level = 3");
    std::fs::write(&path, text).unwrap();
    let checked = run_cli(&["check-config", path.to_str().unwrap()]);
    assert!(!checked.status.success());
    assert_eq!(
        String::from_utf8_lossy(&checked.stderr).trim(),
        "fallback-broker: configuration error: option log.level: expected a string, got integer"
    );
    let help = run_cli(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("generate-config"));
}

#[test]
fn bad_configuration_stops_the_broker_with_a_line_naming_the_option() {
    let idp = Idp::start();
    let auth = auth_lines(&idp);
    let (status, log) = FallbackConfig::new().start_expect_exit(|ports| {
        format!(
            "[auth]\n{auth}leeway = \"soon\"\n[[listener]]\nbind = \"127.0.0.1:{}\"\n",
            ports.main
        )
    });
    assert!(!status.success());
    assert!(
        log.contains("fallback-broker: configuration error: option auth.leeway: expected a whole number from 0 to 3600, got \"soon\""),
        "{log}"
    );
    let (status, log) = FallbackConfig::new().start_expect_exit(|ports| {
        format!("[auth]\nmode = \"jwt\"\n[[listener]]\nbind = \"127.0.0.1:{}\"\n", ports.main)
    });
    assert!(!status.success());
    assert!(log.contains("option auth.jwks_url is required"), "{log}");
}

#[test]
fn a_listener_that_cannot_bind_is_an_error() {
    let idp = Idp::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let auth = auth_lines(&idp);
    let (status, log) = FallbackConfig::new().start_expect_exit(|ports| {
        format!(
            "[auth]\n{auth}\n[[listener]]\nbind = \"127.0.0.1:{}\"\n[[listener]]\nbind = \"127.0.0.1:{port}\"\n",
            ports.main
        )
    });
    assert!(!status.success(), "{log}");
    assert!(log.contains(&format!("listener[1] (tcp 127.0.0.1:{port})")), "{log}");
    assert!(log.contains("Address already in use"), "{log}");
}

#[test]
fn sigterm_disconnects_clients_and_exits_cleanly() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "");
    let token = idp.opaque_token("device-1", &["mqtt:read:a/#"]);
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    let (status, log) = broker.stop_with_status();
    assert!(status.success(), "{status}\n{log}");
    let end = client.wait_disconnected(WAIT).expect("disconnected");
    assert_eq!(end.reason_code, Some(0x8B), "server shutting down: {end:?}");
    assert!(log.contains("SIGTERM: shutting down") && log.contains("stopped"), "{log}");
    assert!(!log.contains(&token), "a token reached the log");
}

// ---------------------------------------------------------------------------------------------
// TLS and WebSocket listeners.
// ---------------------------------------------------------------------------------------------

/// Issue #20, item 1 on the fallback broker: one listener requiring client certificates serves
/// certificate-only devices (no password: the certificate's common name is the identity, with
/// its `[[users.grants]]`), token devices and users-file users (the password decides).
#[test]
fn certificate_devices_token_devices_and_users_share_a_listener_requiring_certificates() {
    let idp = Idp::start();
    let config = FallbackConfig::new();
    make_certificates(config.dir());
    for (name, cn) in
        [("cert-device", "tenant1:dev7"), ("token-device", "device-1"), ("human", "human")]
    {
        client_certificate(config.dir(), name, cn);
    }
    let passwd = config.password_file(&[("human", "human-pass")]);
    let dir = config.dir().to_path_buf();
    let tls_port = config.ports().second;
    let broker = start(
        &idp,
        config,
        "token_username = \"oauth2\"\n",
        &format!(
            "[[listener]]\ntype = \"tls\"\nbind = \"127.0.0.1:{tls_port}\"\ncert = \"server.pem\"\n\
             key = \"server.key\"\nrequire_certificate = true\nca = \"ca.pem\"\n\
             [users]\nfile = {}\n\
             [[users.grants]]\nusername = \"human\"\nwrite = [\"ops/#\"]\n\
             [[users.grants]]\nusername = \"tenant1:dev7\"\nwrite = [\"%u/attrs\"]\nread = [\"%u/config\"]\n",
            toml_string(&passwd.to_string_lossy())
        ),
    );
    let watcher_token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    let watcher_login = ConnectOptions::new("watcher").credentials("oauth2", &watcher_token);
    let watcher = MqttClient::connect(broker.port(), Protocol::V5, watcher_login).unwrap();
    assert_eq!(watcher.subscribe("#", 1), 0x01);

    assert!(publish_over_tls(tls_port, &dir, "cert-device", None, "tenant1:dev7/attrs"));
    assert!(publish_over_tls(tls_port, &dir, "cert-device", None, "tenant2:dev1/attrs"));
    assert!(publish_over_tls(tls_port, &dir, "cert-device", None, "tenant1:dev7/config"));
    let token = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
    let token_login = Some(("oauth2", token.as_str()));
    assert!(publish_over_tls(tls_port, &dir, "token-device", token_login, "devices/device-1/t"));
    assert!(publish_over_tls(tls_port, &dir, "token-device", token_login, "devices/device-2/t"));
    assert!(publish_over_tls(tls_port, &dir, "human", Some(("human", "human-pass")), "ops/note"));
    assert_eq!(
        watcher.topics_until_quiet(WAIT, QUIET),
        ["tenant1:dev7/attrs", "devices/device-1/t", "ops/note"]
    );
    broker.expect_log("client \"cert-device\" accepted: certificate \"tenant1:dev7\"", WAIT);

    // With a password the password decides: a bad token or password is refused, never turned
    // into a certificate login.
    let garbage = Some(("oauth2", "garbage"));
    assert!(!publish_over_tls(tls_port, &dir, "cert-device", garbage, "tenant1:dev7/attrs"));
    let wrong = Some(("human", "wrong-pass"));
    assert!(!publish_over_tls(tls_port, &dir, "human", wrong, "ops/note"));
    assert!(watcher.expect_nothing(QUIET));

    // Without a client certificate the handshake fails.
    let (ok, text) = publish_without_certificate(tls_port, &dir, None, "tenant1:dev7/attrs");
    assert!(!ok, "accepted without a certificate: {text}");
    // The plain listener takes no certificate logins: no password there is anonymous, refused.
    assert_eq!(
        MqttClient::connect(broker.port(), Protocol::V5, ConnectOptions::new("tenant1:dev7")).err(),
        Some(ConnectRefused::Code(0x87))
    );
}

/// rmqtt 0.24 hands the broker a client certificate's names, not the certificate: a
/// certificate-bound token (RFC 8705) cannot be proven, so it is refused even with its own
/// certificate (`require_certificate_binding` when-present, the default), and used as a bearer
/// token with `off`. Bearer tokens are unaffected.
#[test]
fn certificate_bound_tokens_are_refused_because_the_binding_cannot_be_proven_here() {
    for binding in ["when-present", "off"] {
        let idp = Idp::start();
        let config = FallbackConfig::new();
        make_certificates(config.dir());
        client_certificate(config.dir(), "bound-device", "bound-device");
        let dir = config.dir().to_path_buf();
        let tls_port = config.ports().second;
        let broker = start(
            &idp,
            config,
            &format!("token_username = \"oauth2\"\nrequire_certificate_binding = \"{binding}\"\n"),
            &format!(
                "[[listener]]\ntype = \"tls\"\nbind = \"127.0.0.1:{tls_port}\"\ncert = \"server.pem\"\n\
                 key = \"server.key\"\nrequire_certificate = true\nca = \"ca.pem\"\n"
            ),
        );
        let pem = std::fs::read_to_string(dir.join("bound-device.pem")).unwrap();
        let scopes = ["mqtt:write:devices/bound-device/#"];
        let bound = idp.token(&TokenRequest::new(BOUND_DEVICE, &scopes).presenting(&pem));
        let bearer = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
        let watcher_token = idp.opaque_token("device-3", &["mqtt:read:#"]);
        let watcher_login = ConnectOptions::new("watcher").credentials("oauth2", &watcher_token);
        let watcher = MqttClient::connect(broker.port(), Protocol::V5, watcher_login).unwrap();
        assert_eq!(watcher.subscribe("#", 1), 0x01);

        let bound_login = Some(("oauth2", bound.as_str()));
        let admitted = binding == "off";
        assert_eq!(
            publish_over_tls(tls_port, &dir, "bound-device", bound_login, "devices/bound-device/t"),
            admitted,
            "{binding}"
        );
        let bearer_login = Some(("oauth2", bearer.as_str()));
        assert!(publish_over_tls(
            tls_port,
            &dir,
            "bound-device",
            bearer_login,
            "devices/device-1/t"
        ));
        let expected: &[&str] = if admitted {
            &["devices/bound-device/t", "devices/device-1/t"]
        } else {
            broker.expect_log(
                "client \"bound-device\" refused: the token is bound to a TLS client certificate (cnf x5t#S256) and the connection presented none",
                WAIT,
            );
            &["devices/device-1/t"]
        };
        assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), expected, "{binding}");
    }
}

#[test]
fn tls_listener_serves_mosquitto_clients_with_the_same_rules() {
    let idp = Idp::start();
    let config = FallbackConfig::new();
    make_certificates(config.dir());
    let tls_port = config.ports().second.to_string();
    let broker = start(
        &idp,
        config,
        "token_username = \"oauth2\"\n",
        &format!(
            "[[listener]]\ntype = \"tls\"\nbind = \"127.0.0.1:{tls_port}\"\ncert = \"server.pem\"\nkey = \"server.key\"\n"
        ),
    );
    let ca = broker.dir().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let token = idp.opaque_token("device-1", &["mqtt:write:tls/#", "mqtt:read:tls/#"]);
    let common = [
        "-h",
        "localhost",
        "-p",
        &tls_port,
        "--cafile",
        ca,
        "-u",
        "oauth2",
        "-P",
        &token,
        "-V",
        "mqttv5",
    ];

    let (ok, text) = mosquitto_client(
        "mosquitto_pub",
        &[
            &common[..],
            &["-i", "pub-1", "-t", "tls/state", "-m", "over tls", "-r", "-q", "1", "-d"],
        ]
        .concat(),
    );
    assert!(ok && text.contains("received PUBACK (Mid: 1, RC:0)"), "{text}");
    let (ok, text) = mosquitto_client(
        "mosquitto_pub",
        &[&common[..], &["-i", "pub-2", "-t", "elsewhere", "-m", "x", "-q", "1", "-d"]].concat(),
    );
    assert!(text.contains("RC:135"), "{ok} {text}");
    let (ok, text) = mosquitto_client(
        "mosquitto_sub",
        &[&common[..], &["-i", "sub-1", "-t", "tls/#", "-C", "1", "-W", "10", "-v"]].concat(),
    );
    assert!(ok && text.contains("tls/state over tls"), "{text}");
    // A bad token over TLS: bad user name or password.
    let bad = [
        "-h",
        "localhost",
        "-p",
        &tls_port,
        "--cafile",
        ca,
        "-u",
        "oauth2",
        "-P",
        "nope",
        "-V",
        "mqttv5",
        "-i",
        "x",
        "-t",
        "tls/x",
        "-m",
        "x",
    ];
    let (ok, text) = mosquitto_client("mosquitto_pub", &bad);
    assert!(!ok && text.contains("Not authorized"), "{text}");
    // Without the CA the handshake fails: it really is TLS.
    let (ok, _) = mosquitto_client(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &tls_port,
            "--capath",
            "/nonexistent",
            "-u",
            "oauth2",
            "-P",
            &token,
            "-t",
            "tls/x",
            "-m",
            "x",
        ],
    );
    assert!(!ok);
}

/// A minimal RFC 6455 client (masked binary frames) carrying MQTT packets.
struct WsMqtt {
    stream: TcpStream,
    inbox: Vec<u8>,
}

impl WsMqtt {
    /// Upgrades a TCP connection to `ws://127.0.0.1:port/mqtt` with subprotocol "mqtt".
    fn connect(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The RFC 6455 example key and its accept value.
        let request = format!(
            "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
        assert!(head.contains("sec-websocket-protocol: mqtt"), "{head}");
        Self { stream, inbox: Vec::new() }
    }

    fn send(&mut self, packet: &[u8]) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut frame = vec![0x82];
        match packet.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(packet.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    /// Reads one WebSocket frame's payload into the inbox.
    fn read_frame(&mut self) {
        let mut header = [0u8; 2];
        self.stream.read_exact(&mut header).unwrap();
        let length = match header[1] & 0x7F {
            126 => {
                let mut n = [0u8; 2];
                self.stream.read_exact(&mut n).unwrap();
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.stream.read_exact(&mut n).unwrap();
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        assert_eq!(header[1] & 0x80, 0, "server frames are not masked");
        let mut payload = vec![0u8; usize::try_from(length).unwrap()];
        self.stream.read_exact(&mut payload).unwrap();
        match header[0] & 0x0F {
            0 | 2 => self.inbox.extend_from_slice(&payload),
            opcode => panic!("unexpected WebSocket opcode {opcode}"),
        }
    }

    /// The next MQTT packet: (first byte, body).
    fn recv(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.inbox.len() >= 2 {
                let (mut length, mut shift, mut at) = (0usize, 0, 1);
                let mut complete_header = false;
                while at < self.inbox.len() {
                    let byte = self.inbox[at];
                    length |= usize::from(byte & 0x7F) << shift;
                    shift += 7;
                    at += 1;
                    if byte & 0x80 == 0 {
                        complete_header = true;
                        break;
                    }
                }
                if complete_header && self.inbox.len() >= at + length {
                    let first = self.inbox[0];
                    let body = self.inbox[at..at + length].to_vec();
                    self.inbox.drain(..at + length);
                    return (first, body);
                }
            }
            self.read_frame();
        }
    }
}

/// The reason code of an MQTT 5 PUBACK body (0 when omitted).
fn puback_code(body: &[u8]) -> u8 {
    body.get(2).copied().unwrap_or(0)
}

#[test]
fn websocket_listener_applies_the_same_rules() {
    let idp = Idp::start();
    let config = FallbackConfig::new();
    let ws_port = config.ports().second;
    let broker = start(
        &idp,
        config,
        "",
        &format!("[[listener]]\ntype = \"ws\"\nbind = \"127.0.0.1:{ws_port}\"\n"),
    );
    let token = idp.opaque_token("device-1", &["mqtt:write:ws/#", "mqtt:read:ws/#"]);

    let mut refused = WsMqtt::connect(ws_port);
    let mut connect = RawConnect::new(Protocol::V5, "ws-bad");
    connect.username = Some(b"x".to_vec());
    connect.password = Some(b"not-a-valid-token".to_vec());
    refused.send(&connect.encode());
    let (first, body) = refused.recv();
    assert_eq!((first, body[1]), (0x20, 0x87), "CONNACK not authorized");

    let mut ws = WsMqtt::connect(ws_port);
    let mut connect = RawConnect::new(Protocol::V5, "ws-client");
    connect.username = Some(b"x".to_vec());
    connect.password = Some(token.into_bytes());
    ws.send(&connect.encode());
    let (first, body) = ws.recv();
    assert_eq!((first, body[1]), (0x20, 0x00), "CONNACK success");

    ws.send(&encode_subscribe(Protocol::V5, 1, &[("ws/#", 1), ("other/#", 1)]));
    let (first, body) = ws.recv();
    assert_eq!(first, 0x90);
    assert_eq!(&body[body.len() - 2..], &[0x01, 0x87], "SUBACK codes");

    ws.send(&encode_publish(Protocol::V5, "other/x", b"no", 1, false, Some(2)));
    let (first, body) = ws.recv();
    assert_eq!((first, puback_code(&body)), (0x40, 0x87), "denied PUBACK");

    ws.send(&encode_publish(Protocol::V5, "ws/x", b"over websocket", 1, false, Some(3)));
    let mut got_ack = false;
    let mut got_message = false;
    while !(got_ack && got_message) {
        let (first, body) = ws.recv();
        match first & 0xF0 {
            0x40 => {
                assert_eq!(puback_code(&body), 0x00);
                got_ack = true;
            }
            0x30 => {
                let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
                assert_eq!(&body[2..2 + topic_len], b"ws/x");
                assert!(body.ends_with(b"over websocket"));
                got_message = true;
            }
            other => panic!("unexpected packet type {other:#x}"),
        }
    }
    drop(broker);
}

/// Logs never carry the password of a users-file user.
#[test]
fn users_file_passwords_never_reach_the_log() {
    let idp = Idp::start();
    let config = FallbackConfig::new();
    let passwd = config.password_file(&[("human", "very-secret-pass")]);
    let broker = start(
        &idp,
        config,
        "token_username = \"oauth2\"\n",
        &format!(
            "[users]\nfile = {}\n[[users.grants]]\nusername = \"human\"\nread = [\"ops/#\"]\n",
            toml_string(&passwd.to_string_lossy())
        ),
    );
    let human = MqttClient::connect(
        broker.port(),
        Protocol::V311,
        ConnectOptions::new("op").credentials("human", "very-secret-pass"),
    )
    .unwrap();
    assert_eq!(human.subscribe("ops/#", 0), 0x00);
    assert_eq!(human.subscribe("other/#", 0), 0x80);
    let wrong = MqttClient::connect(
        broker.port(),
        Protocol::V311,
        ConnectOptions::new("op2").credentials("human", "wrong-pass-xyz"),
    );
    assert_eq!(wrong.err(), Some(ConnectRefused::Code(5)));
    broker.expect_log("bad username or password for users-file user \"human\"", WAIT);
    let log = broker.log();
    assert!(!log.contains("very-secret-pass") && !log.contains("wrong-pass-xyz"), "{log}");
    assert_eq!(idp.stats().introspections, 0);
}

/// A client that sends DISCONNECT (or just closes) and reconnects at once with the same client
/// id takes its session over. rmqtt 0.24 refused such a reconnect with CONNACK 0x88 / 3 when
/// the old session's task ended while being kicked (25 of these 200 rounds); see
/// `fallback-broker/src/session_takeover.rs`.
#[test]
fn an_immediate_reconnect_with_the_same_client_id_takes_the_session_over() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "");
    let token = idp.opaque_token("device-1", &["mqtt:read:t/#"]);
    let mut refused = Vec::new();
    for round in 0..200 {
        let protocol = if round % 2 == 0 { Protocol::V5 } else { Protocol::V311 };
        let mut raw = RawConnect::new(protocol, "same-id");
        raw.username = Some(b"same-id".to_vec());
        raw.password = Some(token.clone().into_bytes());
        let disconnect: &[u8] = if protocol == Protocol::V5 { &[0xE0, 1, 0] } else { &[0xE0, 0] };
        for attempt in ["first", "second"] {
            let mut session = RawSession::connect(broker.port(), &raw);
            if !session.outcome().is_accepted() {
                refused.push(format!("round {round}, {attempt}: {:?}", session.outcome()));
            }
            // The second one leaves without DISCONNECT: the next round takes over a session
            // whose socket just closed.
            if attempt == "first" {
                assert!(session.send_raw(disconnect));
            }
        }
    }
    assert!(refused.is_empty(), "{} refused: {refused:?}", refused.len());
    assert!(!broker.log().contains("Connection Refused"), "{}", broker.log());
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files
}

/// `[storage]` (issue #18 item 2): durable sessions with their subscriptions and queued QoS 1
/// messages, and retained messages, survive a restart, and no token is written to disk. A
/// restored session is still bound to tokens: its client gets in only with a token valid now,
/// and its queued messages only through that token's read grants.
#[test]
fn durable_sessions_and_retained_messages_survive_a_restart_bound_to_tokens() {
    let idp = Idp::start();
    let broker = start(&idp, FallbackConfig::new(), "", "[storage]\ndir = \"data\"\n");
    let port = broker.port();
    let durable = |id: &str, token: &str| {
        let options = ConnectOptions::new(id).credentials("x", token).clean(false);
        MqttClient::connect(port, Protocol::V5, options.session_expiry(3600))
    };
    let keeper_token = idp.opaque_token("device-1", &["mqtt:read:q/#"]);
    let short = TokenRequest::new("device-2", &["mqtt:read:q/#"]).resource(scenarios::AUDIENCE);
    let expiring_token = idp.token(&short.ttl_secs(15));
    let subscribers: Vec<MqttClient> = [("keeper", &keeper_token), ("expiring", &expiring_token)]
        .into_iter()
        .map(|(id, token)| {
            let client = durable(id, token).unwrap();
            assert_eq!(client.subscribe("q/#", 1), 0x01);
            client
        })
        .collect();
    // Each waits for the broker to close its socket, which rmqtt takes its time to do.
    std::thread::scope(|scope| {
        for client in subscribers {
            scope.spawn(move || client.disconnect());
        }
    });
    let writer_token = idp.opaque_token("device-3", &["mqtt:write:q/#"]);
    let writer = connected(port, Protocol::V5, "writer", &writer_token);
    for topic in ["q/0", "q/1", "q/2"] {
        assert_eq!(writer.publish(topic, b"queued", 1, false), Some(0x00));
    }
    assert_eq!(writer.publish("q/retained", b"kept", 1, true), Some(0x00));
    drop(writer);

    let (broker, _) = broker.restart();
    for (path, content) in files_under(&broker.dir().join("data")) {
        for token in [&keeper_token, &expiring_token, &writer_token] {
            assert!(
                !content.windows(token.len()).any(|window| window == token.as_bytes()),
                "a token is stored in {}",
                path.display()
            );
        }
    }

    // The durable session is back, with its subscription and what was queued for it.
    let keeper = durable("keeper", &keeper_token).unwrap();
    assert!(keeper.connack().session_present);
    // rmqtt-session-storage does not keep the order of a restored queue.
    let mut restored = keeper.topics_until_quiet(WAIT, QUIET);
    restored.sort();
    assert_eq!(restored, ["q/0", "q/1", "q/2", "q/retained"]);
    // Retained messages too.
    let fresh = connected(port, Protocol::V5, "fresh", &keeper_token);
    assert_eq!(fresh.subscribe("q/retained", 1), 0x01);
    assert_eq!(fresh.topics_until_quiet(WAIT, QUIET), ["q/retained"]);

    // The expiring token ran out while the broker was down: its session gives nothing to it,
    // and a new token gets only what that token may read.
    let exp = mosquitto_oauth_e2e::idp::jwt_claims(&expiring_token)["exp"].as_u64().unwrap();
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(durable("expiring", &expiring_token).err(), Some(ConnectRefused::Code(0x87)));
    let narrower = idp.opaque_token("device-2", &["mqtt:read:q/1"]);
    let expiring = durable("expiring", &narrower).unwrap();
    assert!(expiring.connack().session_present);
    assert_eq!(expiring.topics_until_quiet(WAIT, QUIET), ["q/1"]);
}
