//! Tests of the broker and client harness itself, against plain Mosquitto (no plugin): denials
//! come from a `password_file` and an `acl_file`, so the exact codes Mosquitto sends are pinned
//! here before plugin tests rely on them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, mosquitto_21_binary};
use mosquitto_oauth_e2e::mqtt::{
    ClientError, ConnectOptions, ConnectRefused, MqttClient, Protocol, RawConnect, RawOutcome,
    RawSession, raw_connect_v5, raw_connect_v5_auth, raw_connect_v311, reason,
};

/// Deadline for things that should happen promptly.
const WAIT: Duration = Duration::from_secs(5);
/// Window in which a denied message must not arrive.
const QUIET: Duration = Duration::from_millis(500);

const ALICE: (&str, &str) = ("alice", "alice-pass");
const BOB: (&str, &str) = ("bob", "bob-pass");

/// A broker with users alice (readwrite `a/#`) and bob (readwrite `b/#`) in a `password_file`
/// and an `acl_file`, no anonymous access.
fn acl_broker() -> Mosquitto {
    let config = MosquittoConfig::new();
    let passwd = config.password_file(&[ALICE, BOB]);
    let acl = config
        .write_file("acl", "user alice\ntopic readwrite a/#\n\nuser bob\ntopic readwrite b/#\n");
    config.start(|ports| {
        format!(
            "per_listener_settings false\nlistener {} 127.0.0.1\nallow_anonymous false\n\
             password_file {}\nacl_file {}\n",
            ports.main,
            passwd.display(),
            acl.display()
        )
    })
}

/// Mosquitto's stock dynamic-security plugin, if installed.
fn dynsec_plugin() -> Option<PathBuf> {
    std::env::var_os("MOSQUITTO_DYNSEC_PLUGIN").map(PathBuf::from).or_else(|| {
        ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
            .iter()
            .map(|dir| Path::new(dir).join("mosquitto_dynamic_security.so"))
            .find(|path| path.is_file())
    })
}

/// Password of both users of [`dynsec_broker`] (they share one hash).
const DYNSEC_PASSWORD: &str = "shared-pass";

/// A broker whose access control is Mosquitto's dynamic-security plugin (the only stock way to
/// get SUBSCRIBE refusals): alice may use `a/#`, bob `b/#`, both with [`DYNSEC_PASSWORD`].
fn dynsec_broker(plugin: &Path) -> Mosquitto {
    let config = MosquittoConfig::new();
    let path = config.dir().join("dynsec.json");
    let status = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&path)
        .args(["admin", DYNSEC_PASSWORD])
        .stdout(Stdio::null())
        .status()
        .expect("mosquitto_ctrl runs");
    assert!(status.success(), "mosquitto_ctrl dynsec init: {status}");
    let mut json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let admin = json["clients"][0].clone();
    let client = |name: &str| {
        let mut client = admin.clone();
        client["username"] = json!(name);
        client["textName"] = json!(name);
        client["roles"] = json!([{ "rolename": format!("{name}-role") }]);
        client
    };
    let role = |name: &str, prefix: &str| {
        let acls: Vec<Value> = ["publishClientSend", "publishClientReceive", "subscribePattern"]
            .iter()
            .map(|kind| json!({ "acltype": kind, "topic": format!("{prefix}/#"), "allow": true }))
            .collect();
        json!({ "rolename": format!("{name}-role"), "acls": acls })
    };
    json["clients"] = json!([client("alice"), client("bob")]);
    json["roles"] = json!([role("alice", "a"), role("bob", "b")]);
    config.write_file("dynsec.json", serde_json::to_vec_pretty(&json).unwrap());
    config.start(|ports| {
        format!(
            "listener {} 127.0.0.1\nplugin {}\nplugin_opt_config_file {}\n",
            ports.main,
            plugin.display(),
            path.display()
        )
    })
}

fn connect(broker: &Mosquitto, protocol: Protocol, (user, pass): (&str, &str)) -> MqttClient {
    MqttClient::connect(broker.port(), protocol, ConnectOptions::default().credentials(user, pass))
        .unwrap_or_else(|refused| panic!("{user} refused: {refused:?}\n{}", broker.log()))
}

fn refusal(broker: &Mosquitto, protocol: Protocol, user: &str, pass: &str) -> ConnectRefused {
    MqttClient::connect(broker.port(), protocol, ConnectOptions::default().credentials(user, pass))
        .err()
        .unwrap_or_else(|| panic!("{user} with password {pass:?} was accepted"))
}

#[test]
fn bad_credentials_get_the_exact_connack_code() {
    let broker = acl_broker();
    // 3.1.1: 5 "not authorized" (not 4 "bad user name or password").
    assert_eq!(refusal(&broker, Protocol::V311, "alice", "wrong"), ConnectRefused::Code(5));
    assert_eq!(refusal(&broker, Protocol::V311, "nobody", "x"), ConnectRefused::Code(5));
    // 5: 0x87 "not authorized" (not 0x86 "bad user name or password").
    let not_authorized = ConnectRefused::Code(reason::NOT_AUTHORIZED);
    assert_eq!(refusal(&broker, Protocol::V5, "alice", "wrong"), not_authorized);
    assert_eq!(refusal(&broker, Protocol::V5, "nobody", "x"), not_authorized);
    // Anonymous: refused the same way.
    let anonymous = MqttClient::connect(broker.port(), Protocol::V5, ConnectOptions::default());
    assert_eq!(anonymous.err(), Some(not_authorized));
    let anonymous = MqttClient::connect(broker.port(), Protocol::V311, ConnectOptions::default());
    assert_eq!(anonymous.err(), Some(ConnectRefused::Code(5)));
}

/// What a broker answers alice (allowed `a/#` only) when she touches `b/#`.
struct Expected {
    /// SUBACK code for `b/#` and `b/x`.
    subscription: u8,
    /// PUBACK code for a QoS 1 PUBLISH to `b/x`.
    publish: u8,
}

/// Subscribe and publish denials, a normal round trip, and no delivery of denied messages, for
/// alice and bob (allowed `b/#` only) on `broker`.
fn denials(
    broker: &Mosquitto,
    protocol: Protocol,
    alice: (&str, &str),
    bob: (&str, &str),
    expected: &Expected,
) {
    let alice = connect(broker, protocol, alice);
    let bob = connect(broker, protocol, bob);

    assert_eq!(alice.subscribe("b/#", 1), expected.subscription);
    let codes = alice.subscribe_many(&["a/#", "b/x", "a/+/c"]);
    assert_eq!(codes, [1, expected.subscription, 1]);
    assert_eq!(bob.subscribe("b/#", 2), 2);

    // Round trip on an allowed topic.
    assert_eq!(alice.publish("a/x", b"hello", 1, false), Some(0));
    let message = alice.recv(WAIT).expect("alice gets her own message");
    assert_eq!((message.topic.as_str(), message.payload.as_slice()), ("a/x", &b"hello"[..]));
    assert_eq!((message.qos, message.retain), (1, false));

    // Denied publish: acknowledged with the code, never delivered.
    assert_eq!(alice.publish("b/x", b"denied", 1, false), Some(expected.publish));
    assert!(alice.publish("b/x", b"denied qos0", 0, false).is_none());
    broker.expect_log("Denied PUBLISH from", WAIT);
    assert!(bob.expect_nothing(QUIET), "bob received a denied message");
    // Bob's own message does arrive (and first: the denied ones were not queued before it).
    assert_eq!(bob.publish("b/y", b"from bob", 2, false), Some(0));
    let message = bob.recv(WAIT).expect("bob gets his own message");
    assert_eq!((message.topic.as_str(), message.qos), ("b/y", 2));
    // Alice may not read b/#, whether or not her subscription was granted.
    assert!(alice.expect_nothing(QUIET), "alice received a message she may not read");

    assert!(alice.ping(WAIT) && alice.is_connected());
    alice.disconnect();
    bob.disconnect();
}

/// With an `acl_file`, Mosquitto 2.0.11 grants every SUBSCRIBE and checks read access only when
/// delivering; a denied QoS 1 PUBLISH gets PUBACK 0 on 3.1.1 and 0x87 on 5.
#[test]
fn acl_file_denials_v311() {
    let expected = Expected { subscription: 1, publish: 0 };
    denials(&acl_broker(), Protocol::V311, ALICE, BOB, &expected);
}

#[test]
fn acl_file_denials_v5() {
    let expected = Expected { subscription: 1, publish: reason::NOT_AUTHORIZED };
    denials(&acl_broker(), Protocol::V5, ALICE, BOB, &expected);
}

/// The dynamic-security plugin refuses SUBSCRIBE: SUBACK 0x80 on 3.1.1, 0x87 on 5.
#[test]
fn dynsec_denials() {
    let Some(plugin) = dynsec_plugin() else {
        eprintln!("mosquitto_dynamic_security.so not found: skipping");
        return;
    };
    let broker = dynsec_broker(&plugin);
    let alice = ("alice", DYNSEC_PASSWORD);
    let bob = ("bob", DYNSEC_PASSWORD);
    let v311 = Expected { subscription: reason::V311_SUBACK_FAILURE, publish: 0 };
    denials(&broker, Protocol::V311, alice, bob, &v311);
    let v5 = Expected { subscription: reason::NOT_AUTHORIZED, publish: reason::NOT_AUTHORIZED };
    denials(&broker, Protocol::V5, alice, bob, &v5);
    assert_eq!(refusal(&broker, Protocol::V311, "alice", "wrong"), ConnectRefused::Code(5));
    let refused = refusal(&broker, Protocol::V5, "alice", "wrong");
    assert_eq!(refused, ConnectRefused::Code(reason::NOT_AUTHORIZED));
}

#[test]
fn v5_publish_without_subscribers() {
    // Mosquitto 2.0.11 answers "no matching subscribers" (0x10) in PUBACK but not in PUBREC.
    let broker = acl_broker();
    let alice = connect(&broker, Protocol::V5, ALICE);
    assert_eq!(alice.publish("a/nobody", b"x", 1, false), Some(reason::NO_MATCHING_SUBSCRIBERS));
    assert_eq!(alice.publish("a/nobody", b"x", 2, false), Some(0));
}

#[test]
fn retained_message_and_will() {
    let broker = acl_broker();
    let watcher = connect(&broker, Protocol::V311, ALICE);
    assert_eq!(watcher.subscribe("a/will", 1), 1);

    let options = ConnectOptions::default().credentials(ALICE.0, ALICE.1).will("a/will", b"gone");
    let doomed = MqttClient::connect(broker.port(), Protocol::V5, options).unwrap();
    drop(doomed); // closes without DISCONNECT
    let will = watcher.recv(WAIT).expect("will is published");
    assert_eq!((will.topic.as_str(), will.payload.as_slice()), ("a/will", &b"gone"[..]));

    let options = ConnectOptions::default().credentials(ALICE.0, ALICE.1).will("a/will", b"nope");
    MqttClient::connect(broker.port(), Protocol::V5, options).unwrap().disconnect();
    assert!(watcher.expect_nothing(QUIET), "normal DISCONNECT must not publish the will");

    watcher.publish("a/retained", b"kept", 1, true);
    let late = connect(&broker, Protocol::V5, ALICE);
    assert_eq!(late.subscribe("a/retained", 0), 0);
    let message = late.recv(WAIT).expect("retained message");
    assert!(message.retain && message.payload == b"kept");
}

#[test]
fn session_takeover_disconnects_the_old_client() {
    let broker = acl_broker();
    let options = ConnectOptions::new("same-id").credentials(ALICE.0, ALICE.1);
    let v5_first = MqttClient::connect(broker.port(), Protocol::V5, options.clone()).unwrap();
    let _second = MqttClient::connect(broker.port(), Protocol::V5, options.clone()).unwrap();
    let info = v5_first.wait_disconnected(WAIT).expect("first client is disconnected");
    // Mosquitto 2.0.11 just closes the old connection, even on MQTT 5 (no DISCONNECT 0x8E).
    assert_eq!(info.reason_code, None);
    assert!(!v5_first.is_connected());
    assert!(matches!(v5_first.try_publish("a/x", b"x", 1, false), Err(ClientError::Closed(_))));

    let options = ConnectOptions::new("other-id").credentials(ALICE.0, ALICE.1);
    let v311_first = MqttClient::connect(broker.port(), Protocol::V311, options.clone()).unwrap();
    let _second = MqttClient::connect(broker.port(), Protocol::V311, options).unwrap();
    let info = v311_first.wait_disconnected(WAIT).expect("first client is disconnected");
    assert_eq!(info.reason_code, None, "3.1.1 has no DISCONNECT from the server");
}

#[test]
fn raw_v311_binary_credentials() {
    let broker = acl_broker();
    let port = broker.port();
    let outcome = |user: &[u8], pass: &[u8]| raw_connect_v311(port, "raw", Some(user), Some(pass));
    let connack = |code| RawOutcome::Connack { code, properties: Default::default() };

    assert_eq!(outcome(b"alice", b"alice-pass"), connack(0));
    assert_eq!(outcome(b"alice", b"\0alice-pass"), connack(5));
    assert_eq!(outcome(b"alice", b"alice\0pass"), connack(5));
    assert_eq!(outcome(b"alice", &vec![b'p'; 65_535]), connack(5));
    assert_eq!(outcome(b"alice", &[0xFF, 0x00, 0xFE]), connack(5));
    // Mosquitto's password_file check hashes the password as a C string: bytes after a NUL are
    // ignored.
    assert_eq!(outcome(b"alice", b"alice-pass\0trailing"), connack(0));
    // Invalid UTF-8 in the user name or client id is a protocol error: closed, no CONNACK.
    assert_eq!(outcome(&[b'a', 0xC3, 0x28], b"alice-pass"), RawOutcome::Closed);
    assert_eq!(
        raw_connect_v311(port, [0xFF, 0xFE], Some(b"alice"), Some(b"alice-pass")),
        RawOutcome::Closed
    );
    // v5 with the same binary password: refused with 0x87.
    assert_eq!(
        raw_connect_v5(port, "raw5", Some(b"alice"), Some(b"\0alice-pass")).code(),
        Some(reason::NOT_AUTHORIZED)
    );
    // The broker survived all of it.
    assert_eq!(outcome(b"bob", b"bob-pass"), connack(0));
}

#[test]
fn raw_v5_unknown_auth_method_is_refused() {
    let broker = acl_broker();
    let mut session = raw_connect_v5_auth(broker.port(), "auth-client", "NO-SUCH-METHOD", b"data");
    assert_eq!(session.outcome().code(), Some(reason::BAD_AUTHENTICATION_METHOD));
    assert!(matches!(session.outcome(), RawOutcome::Connack { .. }));
    assert_eq!(session.wait_closed(WAIT), Some(RawOutcome::Closed));
}

#[test]
fn raw_session_publishes_and_receives() {
    let broker = acl_broker();
    let mut connect = RawConnect::new(Protocol::V5, "raw-pubsub");
    connect.username = Some(b"alice".to_vec());
    connect.password = Some(b"alice-pass".to_vec());
    let mut session = RawSession::connect(broker.port(), &connect);
    assert!(session.outcome().is_accepted(), "{:?}", session.outcome());
    assert_eq!(session.subscribe("a/#", 1), Some(1));
    assert_eq!(session.subscribe("b/#", 1), Some(1), "acl_file grants every subscription");
    assert_eq!(session.publish_qos1("a/raw", b"r"), Some(0));
    assert_eq!(session.publish_qos1("b/raw", b"r"), Some(reason::NOT_AUTHORIZED));
    let message = session.recv_publish(WAIT).expect("own message");
    assert_eq!((message.topic.as_str(), message.qos), ("a/raw", 1));
    assert!(session.recv_publish(QUIET).is_none());
    assert!(session.ping(WAIT));
    session.disconnect();
}

#[test]
fn invalid_config_line_makes_mosquitto_exit() {
    let (status, log) = Mosquitto::start_expect_exit(|ports| {
        format!("listener {} 127.0.0.1\nno_such_option 1\n", ports.main)
    });
    assert!(!status.success(), "status {status}, log:\n{log}");
    assert!(log.contains("Unknown configuration variable \"no_such_option\""), "log:\n{log}");
}

#[test]
#[should_panic(expected = "mosquitto did not start")]
fn start_panics_with_the_log_when_mosquitto_exits() {
    let _broker = Mosquitto::start(|ports| format!("listener {}\nno_such_option 1\n", ports.main));
}

#[test]
fn second_listener_reload_and_stop() {
    let broker = Mosquitto::start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\nlistener {} 127.0.0.1\n",
            ports.main, ports.second
        )
    });
    for port in [broker.ports().main, broker.ports().second] {
        let client = MqttClient::connect(port, Protocol::V5, ConnectOptions::default()).unwrap();
        assert_eq!(client.subscribe("t", 0), 0);
        client.publish("t", b"x", 0, false);
        assert!(client.recv(WAIT).is_some());
        client.disconnect();
    }
    assert!(!broker.log_lines_containing("Opening ipv4 listen socket").is_empty());
    broker.reload();
    let client =
        MqttClient::connect(broker.port(), Protocol::V311, ConnectOptions::default()).unwrap();
    assert!(client.ping(WAIT));
    let (status, log) = broker.stop_with_status();
    assert!(status.success(), "status {status}, log:\n{log}");
    assert!(log.contains("mosquitto version 2.0.11 terminating"), "log:\n{log}");
}

/// Mosquitto 2.1 (from `tests/mosquitto-2.1/fetch.sh`, or `$MOSQUITTO_21_BIN`) starts with a
/// plain config, routes messages between a 3.1.1 and a 5 client, reloads and stops cleanly.
/// Skipped when 2.1 has not been fetched.
#[test]
fn mosquitto_21_runs_when_fetched() {
    let Some(binary) = mosquitto_21_binary() else {
        eprintln!(
            "Mosquitto 2.1 not fetched (run tests/mosquitto-2.1/fetch.sh or set \
             MOSQUITTO_21_BIN): skipping"
        );
        return;
    };
    let broker = MosquittoConfig::new()
        .binary(&binary)
        .start(|ports| format!("listener {} 127.0.0.1\nallow_anonymous true\n", ports.main));
    assert!(
        broker.log().contains("mosquitto version 2.1"),
        "{} is not Mosquitto 2.1; log:\n{}",
        binary.display(),
        broker.log()
    );
    let subscriber =
        MqttClient::connect(broker.port(), Protocol::V311, ConnectOptions::default()).unwrap();
    let publisher =
        MqttClient::connect(broker.port(), Protocol::V5, ConnectOptions::default()).unwrap();
    assert_eq!(subscriber.subscribe("t/21/#", 1), 1);
    assert_eq!(publisher.publish("t/21/x", b"hello 2.1", 1, false), Some(0));
    let message = subscriber.recv(WAIT).expect("the subscriber gets the message");
    assert_eq!((message.topic.as_str(), message.payload.as_slice()), ("t/21/x", &b"hello 2.1"[..]));
    assert_eq!(message.qos, 1);
    publisher.disconnect();
    subscriber.disconnect();
    broker.reload();
    let client =
        MqttClient::connect(broker.port(), Protocol::V5, ConnectOptions::default()).unwrap();
    assert!(client.ping(WAIT));
    client.disconnect();
    let (status, log) = broker.stop_with_status();
    assert!(status.success(), "status {status}, log:\n{log}");
    assert!(log.contains("mosquitto version 2.1") && log.contains(" terminating"), "log:\n{log}");
}
