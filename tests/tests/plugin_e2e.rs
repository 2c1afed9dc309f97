//! The plugin inside a real Mosquitto 2.0, with the real oidc-provider as authorization server
//! and real MQTT 3.1.1 / 5 clients: exact CONNACK/SUBACK/PUBACK codes and which messages arrive.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp, TokenRequest};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, Ports, plugin_path};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, ConnectRefused, MqttClient, Protocol, RawOutcome, raw_connect_v311,
};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(500);
const AUDIENCE: &str = "urn:mqtt:broker";

/// Which plugin interface Mosquitto uses.
#[derive(Clone, Copy, Debug)]
enum Api {
    V5,
    /// The legacy v4 entry points of the same `.so`, forced on Mosquitto 2.0.
    V4,
}

/// `plugin` lines for introspection against `idp`, plus `extra` option lines.
fn plugin_lines(idp: &Idp, extra: &str) -> String {
    format!(
        "plugin {}\nplugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id {BROKER_CLIENT_ID}\n\
         plugin_opt_oauth_client_secret {BROKER_CLIENT_SECRET}\nplugin_opt_oauth_http_timeout_ms 1000\n{extra}",
        plugin_path().display(),
        idp.introspection_url(),
    )
}

fn broker_with(api: Api, body: impl FnOnce(&Ports) -> String) -> Mosquitto {
    let config = match api {
        Api::V5 => MosquittoConfig::new(),
        Api::V4 => MosquittoConfig::new().env("MOSQUITTO_OAUTH_PLUGIN_API", "4"),
    };
    config.start(body)
}

/// One listener with the plugin and nothing else; anonymous clients refused.
fn broker(api: Api, idp: &Idp, extra: &str) -> Mosquitto {
    let plugin = plugin_lines(idp, extra);
    broker_with(api, |ports| {
        format!("listener {} 127.0.0.1\nallow_anonymous false\n{plugin}", ports.main)
    })
}

fn connect(
    port: u16,
    protocol: Protocol,
    client_id: &str,
    token: &str,
) -> Result<MqttClient, ConnectRefused> {
    MqttClient::connect(
        port,
        protocol,
        ConnectOptions::new(client_id).credentials(client_id, token),
    )
}

fn connected(port: u16, protocol: Protocol, client_id: &str, token: &str) -> MqttClient {
    connect(port, protocol, client_id, token)
        .unwrap_or_else(|e| panic!("{client_id} refused: {e:?}"))
}

/// Publishes and returns the topic/payload pairs that arrive within `WAIT` (none expected if
/// `arrives` is false, checked over `QUIET`).
fn round_trip(client: &MqttClient, topic: &str, arrives: bool) {
    client.publish(topic, b"payload", 0, false);
    if arrives {
        let message = client.recv(WAIT).unwrap_or_else(|| panic!("{topic} did not arrive"));
        assert_eq!(message.topic, topic);
    } else {
        assert!(client.expect_nothing(QUIET), "{topic} arrived but should not");
    }
}

fn scopes_device_1() -> Vec<&'static str> {
    vec![
        "mqtt:write:devices/device-1/#",
        "mqtt:write:fleet/+/status",
        "mqtt:write:clients/%c/#",
        "mqtt:read:devices/device-1/#",
        "mqtt:read:fleet/#",
        "mqtt:read:clients/%c/#",
    ]
}

fn opaque_token_scenario(api: Api) {
    let idp = Idp::start();
    let mosquitto = broker(api, &idp, "");
    let token = idp.opaque_token("device-1", &scopes_device_1());
    let client = connected(mosquitto.port(), Protocol::V5, "device-1", &token);

    // Subscribe: inside a read grant is granted, wider is refused (filter containment).
    assert_eq!(client.subscribe("devices/device-1/#", 1), 0x01);
    assert_eq!(client.subscribe("fleet/+/status", 1), 0x01);
    assert_eq!(client.subscribe("clients/device-1/#", 1), 0x01);
    assert_eq!(client.subscribe("devices/#", 1), 0x87);
    assert_eq!(client.subscribe("clients/device-2/#", 1), 0x87);

    // Publish: every write scope counts; outside all of them is refused with PUBACK 0x87.
    assert_eq!(client.publish("devices/device-1/temp", b"21", 1, false), Some(0x00));
    assert_eq!(client.recv(WAIT).unwrap().topic, "devices/device-1/temp");
    assert_eq!(client.publish("fleet/north/status", b"ok", 1, false), Some(0x00));
    assert_eq!(client.recv(WAIT).unwrap().topic, "fleet/north/status");
    assert_eq!(client.publish("clients/device-1/hello", b"me", 1, false), Some(0x00));
    assert_eq!(client.recv(WAIT).unwrap().topic, "clients/device-1/hello");
    assert_eq!(client.publish("devices/device-2/temp", b"x", 1, false), Some(0x87));
    assert_eq!(client.publish("fleet/north/config", b"x", 1, false), Some(0x87));
    assert_eq!(client.publish("clients/device-2/hello", b"x", 1, false), Some(0x87));
    assert!(client.expect_nothing(QUIET));
    assert_eq!(idp.stats().introspections, 1);

    // MQTT 3.1.1: refused subscriptions are 0x80, refused publishes are dropped silently.
    let legacy = connected(mosquitto.port(), Protocol::V311, "device-1-legacy", &token);
    assert_eq!(legacy.subscribe("devices/device-1/#", 1), 0x01);
    assert_eq!(legacy.subscribe("devices/#", 1), 0x80);
    round_trip(&legacy, "devices/device-1/legacy", true);
    assert_eq!(legacy.publish("devices/device-2/x", b"x", 1, false), Some(0x00));
    assert!(legacy.expect_nothing(QUIET));
    // Cached: one introspection for both connections.
    assert_eq!(idp.stats().introspections, 1);
}

#[test]
fn opaque_token_scopes_decide_publish_and_subscribe() {
    opaque_token_scenario(Api::V5);
}

#[test]
fn legacy_v4_interface_enforces_the_same_rules() {
    opaque_token_scenario(Api::V4);
}

#[test]
fn sys_topics_need_an_explicit_grant_and_carry_the_counters() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "plugin_opt_oauth_stats_interval 1\n");
    let everything = idp.opaque_token("device-2", &["mqtt:read:#", "mqtt:write:#"]);
    let client = connected(mosquitto.port(), Protocol::V5, "device-2", &everything);
    assert_eq!(client.subscribe("$SYS/#", 0), 0x87);
    assert_eq!(client.subscribe("#", 0), 0x00);
    assert!(
        client.expect_nothing(QUIET)
            || client.recv(Duration::ZERO).is_none_or(|m| !m.topic.starts_with('$'))
    );

    let operator = idp.opaque_token("device-3", &["mqtt:read:$SYS/broker/oauth/#"]);
    let watcher = connected(mosquitto.port(), Protocol::V5, "device-3", &operator);
    assert_eq!(watcher.subscribe("$SYS/broker/oauth/connects/accepted", 0), 0x00);
    assert_eq!(watcher.subscribe("$SYS/broker/uptime", 0), 0x87);
    let deadline = Instant::now() + WAIT;
    let accepted = loop {
        let message = watcher.recv(WAIT).expect("counter published");
        let value: u64 = String::from_utf8(message.payload).unwrap().parse().unwrap();
        if value >= 2 || Instant::now() > deadline {
            break value;
        }
    };
    assert_eq!(accepted, 2);
}

#[test]
fn delivery_is_filtered_by_the_current_read_grants() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let wide = idp.opaque_token("device-1", &["mqtt:read:devices/#"]);
    let narrow = idp.opaque_token("device-1", &["mqtt:read:devices/a/#"]);
    let publisher_token = idp.opaque_token("device-2", &["mqtt:write:devices/#"]);

    // A durable subscription made under a wide grant ...
    let options = ConnectOptions::new("reader").credentials("reader", &wide).clean(false);
    let reader = MqttClient::connect(mosquitto.port(), Protocol::V311, options).unwrap();
    assert_eq!(reader.subscribe("devices/#", 1), 0x01);
    reader.disconnect();

    // ... keeps existing after reconnecting with a narrower token, but only what the new token
    // may read is delivered.
    let options = ConnectOptions::new("reader").credentials("reader", &narrow).clean(false);
    let reader = MqttClient::connect(mosquitto.port(), Protocol::V311, options).unwrap();
    let publisher = connected(mosquitto.port(), Protocol::V5, "publisher", &publisher_token);
    assert_eq!(publisher.publish("devices/b/x", b"hidden", 1, false), Some(0x00));
    assert_eq!(publisher.publish("devices/a/x", b"visible", 1, false), Some(0x00));
    let message = reader.recv(WAIT).expect("devices/a/x delivered");
    assert_eq!(
        (message.topic.as_str(), message.payload.as_slice()),
        ("devices/a/x", &b"visible"[..])
    );
    assert!(reader.expect_nothing(QUIET));
}

#[test]
fn gomozzie_configuration_works_unchanged() {
    let idp = Idp::start();
    let mosquitto = MosquittoConfig::new().start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\nauth_plugin {}\n\
             auth_opt_openam_endpoint {}\nauth_opt_openam_client_id {BROKER_CLIENT_ID}\n\
             auth_opt_openam_client_secret {BROKER_CLIENT_SECRET}\nauth_opt_openam_log_dest stdout\n",
            ports.main,
            plugin_path().display(),
            idp.introspection_url()
        )
    });
    let token = idp.opaque_token("wildcat", &["mqtt:write:devices/wildcat/#", "mqtt:read:#"]);
    let client = connected(mosquitto.port(), Protocol::V311, "wildcat", &token);
    assert_eq!(client.subscribe("devices/#", 0), 0x00);
    round_trip(&client, "devices/wildcat/temperature", true);
    round_trip(&client, "devices/other/temperature", false);
}

#[test]
fn jwt_access_tokens_are_verified_locally_with_the_provider_keys() {
    let idp = Idp::start();
    let extra = format!(
        "plugin_opt_oauth_issuer {}\nplugin_opt_oauth_audience {AUDIENCE}\nplugin_opt_oauth_leeway 0\n",
        idp.issuer()
    );
    let mosquitto = broker(Api::V5, &idp, &extra);
    let token = idp.jwt_token(
        "device-1",
        &["mqtt:write:devices/device-1/#", "mqtt:read:devices/device-1/#"],
        AUDIENCE,
    );
    let client = connected(mosquitto.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("devices/device-1/#", 0), 0x00);
    round_trip(&client, "devices/device-1/t", true);
    assert_eq!(client.publish("devices/device-2/t", b"x", 1, false), Some(0x87));

    let other_audience = idp.jwt_token("device-1", &["mqtt:read:#"], "urn:mqtt:other");
    assert_eq!(
        connect(mosquitto.port(), Protocol::V5, "a", &other_audience).err(),
        Some(ConnectRefused::Code(0x87))
    );
    assert_eq!(
        connect(mosquitto.port(), Protocol::V311, "a", &other_audience).err(),
        Some(ConnectRefused::Code(5))
    );

    let short =
        idp.token(&TokenRequest::new("device-1", &["mqtt:read:#"]).resource(AUDIENCE).ttl_secs(1));
    let exp = mosquitto_oauth_e2e::idp::jwt_claims(&short)["exp"].as_u64().unwrap();
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        connect(mosquitto.port(), Protocol::V5, "b", &short).err(),
        Some(ConnectRefused::Code(0x87))
    );
    assert_eq!(idp.stats().introspections, 0, "JWTs never go to introspection");
    mosquitto.expect_log("token has expired", WAIT);
    mosquitto.expect_log("token audience does not include oauth_audience", WAIT);
}

#[test]
fn revoked_token_is_refused_once_its_cache_entry_is_gone() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    connected(mosquitto.port(), Protocol::V5, "device-3", &token).disconnect();
    idp.revoke("device-3", &token);
    // Still cached: accepted without asking.
    connected(mosquitto.port(), Protocol::V5, "device-3", &token).disconnect();
    // SIGHUP flushes the cache; the next CONNECT asks again and learns of the revocation.
    mosquitto.reload();
    assert_eq!(
        connect(mosquitto.port(), Protocol::V5, "device-3", &token).err(),
        Some(ConnectRefused::Code(0x87))
    );
    mosquitto.expect_log("token is not active", WAIT);
}

#[test]
fn password_file_users_and_token_devices_share_a_broker() {
    let idp = Idp::start();
    let config = MosquittoConfig::new();
    let passwd = config.password_file(&[("human", "human-pass")]);
    let acl = config.write_file("acl", "user human\ntopic readwrite ops/#\n");
    let plugin = plugin_lines(&idp, "plugin_opt_oauth_token_username oauth2\n");
    let mosquitto = config.start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n{plugin}",
            ports.main,
            passwd.display(),
            acl.display()
        )
    });
    let port = mosquitto.port();
    let token = idp.opaque_token("device-1", &["mqtt:write:devices/#", "mqtt:read:devices/#"]);
    let device = MqttClient::connect(
        port,
        Protocol::V5,
        ConnectOptions::new("device-1").credentials("oauth2", &token),
    )
    .unwrap();
    let human = MqttClient::connect(
        port,
        Protocol::V5,
        ConnectOptions::new("operator").credentials("human", "human-pass"),
    )
    .unwrap();
    assert_eq!(human.subscribe("ops/#", 0), 0x00);
    assert_eq!(device.subscribe("devices/#", 0), 0x00);
    round_trip(&human, "ops/alarm", true);
    round_trip(&device, "devices/d1/t", true);
    assert_eq!(device.publish("ops/alarm", b"x", 1, false), Some(0x87));
    assert_eq!(human.publish("devices/d1/t", b"x", 1, false), Some(0x87));
    // A wrong operator password is refused, and it never reached the authorization server.
    let refused = MqttClient::connect(
        port,
        Protocol::V5,
        ConnectOptions::new("op2").credentials("human", "wrong"),
    );
    assert_eq!(refused.err(), Some(ConnectRefused::Code(0x87)));
    assert_eq!(idp.stats().introspections, 1);
}

#[test]
fn authorization_server_outage_refuses_new_logins_but_not_connected_clients() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let token = idp.opaque_token(
        "device-1",
        &["mqtt:write:devices/device-1/#", "mqtt:read:devices/device-1/#"],
    );
    let fresh = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let client = connected(mosquitto.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("devices/device-1/#", 0), 0x00);

    // The server hangs (stopped, socket still open): logins fail within the 1 s timeout.
    let status = Command::new("kill").args(["-STOP", &idp.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    assert_eq!(
        connect(mosquitto.port(), Protocol::V5, "device-2", &fresh).err(),
        Some(ConnectRefused::Code(0x87))
    );
    assert!(started.elapsed() < Duration::from_secs(4), "refusal took {:?}", started.elapsed());
    mosquitto.expect_log("did not answer within 1s", WAIT);
    // Connected clients keep working.
    round_trip(&client, "devices/device-1/still-up", true);

    // Connection refused (server gone): same answer.
    let _ = Command::new("kill").args(["-CONT", &idp.pid().to_string()]).status();
    drop(idp);
    assert_eq!(
        connect(mosquitto.port(), Protocol::V311, "device-2", &fresh).err(),
        Some(ConnectRefused::Code(5))
    );
    round_trip(&client, "devices/device-1/still-up-2", true);
    assert!(!mosquitto.log().contains(&fresh), "a token reached the log");
}

#[test]
fn bad_configuration_stops_mosquitto_with_a_line_naming_the_option() {
    let idp = Idp::start();
    let plugin = plugin_lines(&idp, "plugin_opt_oauth_leeway soon\n");
    let (status, log) = Mosquitto::start_expect_exit(|ports| {
        format!("listener {} 127.0.0.1\n{plugin}", ports.main)
    });
    assert!(!status.success());
    assert!(
        log.contains("oauth: configuration error: option oauth_leeway: expected a whole number from 0 to 3600, got \"soon\""),
        "{log}"
    );
    let (status, log) = Mosquitto::start_expect_exit(|ports| {
        format!(
            "listener {} 127.0.0.1\nplugin {}\nplugin_opt_oauth_mode jwt\n",
            ports.main,
            plugin_path().display()
        )
    });
    assert!(!status.success());
    assert!(log.contains("option oauth_jwks_url is required"), "{log}");
}

#[test]
fn per_listener_instances_keep_separate_options_and_state() {
    let idp = Idp::start();
    let first = plugin_lines(&idp, "");
    let second = plugin_lines(&idp, "plugin_opt_oauth_scope_prefix iot:\n");
    let mosquitto = MosquittoConfig::new().start(|ports| {
        format!(
            "per_listener_settings true\nlistener {} 127.0.0.1\nallow_anonymous false\n{first}\
             listener {} 127.0.0.1\nallow_anonymous false\n{second}",
            ports.main, ports.second
        )
    });
    let token = idp.opaque_token(
        "device-1",
        &["mqtt:write:a/#", "mqtt:read:a/#", "iot:write:b/#", "iot:read:b/#"],
    );
    let on_first = connected(mosquitto.ports().main, Protocol::V5, "one", &token);
    let on_second = connected(mosquitto.ports().second, Protocol::V5, "two", &token);
    assert_eq!(on_first.subscribe("a/#", 0), 0x00);
    assert_eq!(on_first.subscribe("b/#", 0), 0x87);
    assert_eq!(on_second.subscribe("b/#", 0), 0x00);
    assert_eq!(on_second.subscribe("a/#", 0), 0x87);
    assert_eq!(on_first.publish("b/x", b"x", 1, false), Some(0x87));
    assert_eq!(on_second.publish("a/x", b"x", 1, false), Some(0x87));
    // Each instance has its own cache: two introspections for the same token.
    assert_eq!(idp.stats().introspections, 2);
}

#[test]
fn wills_are_checked_against_write_grants_after_disconnect() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let watcher_token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let watcher = connected(mosquitto.port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("#", 0), 0x00);

    let token = idp.opaque_token("device-1", &["mqtt:write:wills/device-1"]);
    let allowed = MqttClient::connect(
        mosquitto.port(),
        Protocol::V311,
        ConnectOptions::new("device-1")
            .credentials("device-1", &token)
            .will("wills/device-1", b"gone"),
    )
    .unwrap();
    drop(allowed);
    let will = watcher.recv(WAIT).expect("allowed will delivered");
    assert_eq!((will.topic.as_str(), will.payload.as_slice()), ("wills/device-1", &b"gone"[..]));

    let refused = MqttClient::connect(
        mosquitto.port(),
        Protocol::V311,
        ConnectOptions::new("device-1b")
            .credentials("device-1b", &token)
            .will("elsewhere/x", b"gone"),
    )
    .unwrap();
    drop(refused);
    mosquitto.expect_log("denied Write on \"elsewhere/x\"", WAIT);
    assert!(watcher.expect_nothing(QUIET));
}

#[test]
fn expired_token_stops_every_publish_and_delivery() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let token =
        idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]).ttl_secs(3));
    let exp = idp.introspect(&token)["exp"].as_u64().unwrap();
    let client = connected(mosquitto.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("t/#", 1), 0x01);
    assert_eq!(client.publish("t/before", b"x", 1, false), Some(0x00));
    assert!(client.recv(WAIT).is_some());
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(client.publish("t/after", b"x", 1, false), Some(0x87));
    assert!(client.expect_nothing(QUIET));
    mosquitto.expect_log("token expired", WAIT);
}

#[test]
fn binary_and_oversized_passwords_are_refused_without_harm() {
    let idp = Idp::start();
    let mosquitto = broker(Api::V5, &idp, "");
    let port = mosquitto.port();
    // Mosquitto hands plugins the password as a C string: "\0abc" arrives empty.
    for password in [&b"\0abc"[..], &[0xff, 0xfe, 0x00][..], &vec![b'a'; 65_535][..]] {
        let outcome = raw_connect_v311(port, "raw", Some(b"user"), Some(password));
        assert!(matches!(outcome, RawOutcome::Connack { code: 5, .. }), "{outcome:?}");
    }
    let anonymous = raw_connect_v311(port, "anon", None, None);
    assert!(matches!(anonymous, RawOutcome::Connack { code: 5, .. }), "{anonymous:?}");
    assert_eq!(idp.stats().introspections, 0);
    let token = idp.opaque_token("device-1", &["mqtt:read:x"]);
    connected(port, Protocol::V5, "still-serving", &token);
}
