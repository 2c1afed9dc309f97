//! End-to-end scenarios shared by the Mosquitto plugin suite (`tests/plugin_e2e.rs`) and the
//! fallback broker suite (`tests/fallback_e2e.rs`): one definition, run against both brokers,
//! with the real oidc-provider and real MQTT 3.1.1/5 clients.
//!
//! A scenario asks a [`Launcher`] for a broker with some core options (written without the
//! `oauth_` prefix) and users, then talks MQTT to it. The few places where the two brokers
//! legitimately answer differently are methods of [`BrokerUnderTest`] returning what to expect
//! (never a skipped assertion):
//!
//! | difference | Mosquitto + plugin | fallback broker |
//! |---|---|---|
//! | token expires while connected (`disconnect_on_expiry`, the default) | disconnected at `exp` with DISCONNECT 0x98 (administrative action, Mosquitto's kick) | disconnected at `exp` with DISCONNECT 0x87 "token expired" (written by the patched engine, `vendor/rmqtt`) |
//! | will topic not writable | CONNECT accepted; the will is dropped when published | CONNECT refused (0x87 / 5) |

// Test code moved from the suites: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::idp::{Idp, TokenRequest};
use crate::mqtt::{
    ConnectOptions, ConnectRefused, MqttClient, Packet, Properties, PropertyValue, Protocol,
    RawConnect, RawOutcome, RawRead, RawSession, Received, Will, encode_publish_with, property,
    raw_connect_v311,
};

/// How long to wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long to watch for something that should not happen.
pub const QUIET: Duration = Duration::from_millis(500);
/// Audience of the JWT access tokens in the scenarios.
pub const AUDIENCE: &str = "urn:mqtt:broker";

/// A users-file (Mosquitto: `password_file` + `acl_file`) user.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    /// Username.
    pub name: &'a str,
    /// Password.
    pub password: &'a str,
    /// Filters the user may read.
    pub read: &'a [&'a str],
    /// Filters the user may write.
    pub write: &'a [&'a str],
}

/// What a scenario needs from the broker, besides introspection at the test IdP as the broker
/// client with a 1 s HTTP timeout and anonymous clients refused (always configured).
#[derive(Debug, Clone, Default)]
pub struct Setup<'a> {
    /// Core options without the `oauth_` prefix, e.g. `("leeway", "0")`.
    pub options: Vec<(&'a str, String)>,
    /// Users-file users.
    pub users: Vec<User<'a>>,
}

impl<'a> Setup<'a> {
    /// No extra options, no users.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a core option (`name` without the `oauth_` prefix).
    #[must_use]
    pub fn option(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.options.push((name, value.into()));
        self
    }

    /// Adds a users-file user.
    #[must_use]
    pub fn user(mut self, user: User<'a>) -> Self {
        self.users.push(user);
        self
    }
}

/// When a will's topic is checked against the client's write grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WillCheck {
    /// When the will is published; a forbidden will is dropped.
    AtPublication,
    /// At CONNECT; a forbidden will refuses the connection (CONNACK 0x87 / 5).
    AtConnect,
}

/// A running broker as the scenarios see it.
pub trait BrokerUnderTest {
    /// Name for messages.
    fn name(&self) -> &str;
    /// The port of its (plain TCP) listener.
    fn port(&self) -> u16;
    /// Makes the broker forget cached token verdicts, and waits until it has (SIGHUP).
    fn flush_cache(&self);
    /// Everything the broker has logged so far.
    fn log(&self) -> String;
    /// Waits up to `timeout` for `needle` in the log; panics with the log if it never comes.
    fn expect_log(&self, needle: &str, timeout: Duration);
    /// Reason code of the MQTT 5 DISCONNECT a client gets when its token expires (`None`: the
    /// connection just closes).
    fn expiry_disconnect_reason(&self) -> Option<u8>;
    /// When wills are checked.
    fn will_check(&self) -> WillCheck;
}

/// Starts brokers for scenarios.
pub trait Launcher {
    /// A broker with one plain TCP listener, checking tokens at `idp` as configured by `setup`.
    fn start(&self, idp: &Idp, setup: &Setup<'_>) -> Box<dyn BrokerUnderTest>;
}

fn code_for(protocol: Protocol, v5: u8, v311: u8) -> u8 {
    if protocol == Protocol::V5 { v5 } else { v311 }
}

/// CONNACK "not authorized" in `protocol`.
pub fn not_authorized(protocol: Protocol) -> u8 {
    code_for(protocol, 0x87, 5)
}

/// Connects with the token as password and the client id as username.
pub fn connect(
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

/// Like [`connect`], panicking if refused.
pub fn connected(port: u16, protocol: Protocol, client_id: &str, token: &str) -> MqttClient {
    connect(port, protocol, client_id, token)
        .unwrap_or_else(|e| panic!("{client_id} refused: {e:?}"))
}

/// Publishes at QoS 0 and checks that the message comes back to `client` (it is subscribed)
/// within [`WAIT`], or that nothing arrives within [`QUIET`].
pub fn round_trip(client: &MqttClient, topic: &str, arrives: bool) {
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

/// An opaque token: its scopes decide publish and subscribe (filter containment, several
/// grants, `%c`), on MQTT 5 and 3.1.1, with one introspection for both connections.
pub fn opaque_token_scopes_decide_publish_and_subscribe(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let token = idp.opaque_token("device-1", &scopes_device_1());
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);

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
    let legacy = connected(broker.port(), Protocol::V311, "device-1-legacy", &token);
    assert_eq!(legacy.subscribe("devices/device-1/#", 1), 0x01);
    assert_eq!(legacy.subscribe("devices/#", 1), 0x80);
    round_trip(&legacy, "devices/device-1/legacy", true);
    assert_eq!(legacy.publish("devices/device-2/x", b"x", 1, false), Some(0x00));
    assert!(legacy.expect_nothing(QUIET));
    // Cached: one introspection for both connections.
    assert_eq!(idp.stats().introspections, 1);
}

/// `$SYS` needs a grant naming it (`mqtt:read:#` is not enough), and the counters are
/// published there every `stats_interval`.
pub fn sys_topics_need_an_explicit_grant_and_carry_the_counters(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new().option("stats_interval", "1"));
    let everything = idp.opaque_token("device-2", &["mqtt:read:#", "mqtt:write:#"]);
    let client = connected(broker.port(), Protocol::V5, "device-2", &everything);
    assert_eq!(client.subscribe("$SYS/#", 0), 0x87);
    assert_eq!(client.subscribe("#", 0), 0x00);
    assert!(
        client.expect_nothing(QUIET)
            || client.recv(Duration::ZERO).is_none_or(|m| !m.topic.starts_with('$'))
    );

    let operator = idp.opaque_token("device-3", &["mqtt:read:$SYS/broker/oauth/#"]);
    let watcher = connected(broker.port(), Protocol::V5, "device-3", &operator);
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

/// A durable subscription made under a wide grant only delivers what the current token may
/// read after reconnecting with a narrower one.
pub fn delivery_is_filtered_by_the_current_read_grants(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let wide = idp.opaque_token("device-1", &["mqtt:read:devices/#"]);
    let narrow = idp.opaque_token("device-1", &["mqtt:read:devices/a/#"]);
    let publisher_token = idp.opaque_token("device-2", &["mqtt:write:devices/#"]);

    // A durable subscription made under a wide grant ...
    let options = ConnectOptions::new("reader").credentials("reader", &wide).clean(false);
    let reader = MqttClient::connect(broker.port(), Protocol::V311, options).unwrap();
    assert_eq!(reader.subscribe("devices/#", 1), 0x01);
    reader.disconnect();

    // ... keeps existing after reconnecting with a narrower token, but only what the new token
    // may read is delivered.
    let options = ConnectOptions::new("reader").credentials("reader", &narrow).clean(false);
    let reader = MqttClient::connect(broker.port(), Protocol::V311, options).unwrap();
    let publisher = connected(broker.port(), Protocol::V5, "publisher", &publisher_token);
    assert_eq!(publisher.publish("devices/b/x", b"hidden", 1, false), Some(0x00));
    assert_eq!(publisher.publish("devices/a/x", b"visible", 1, false), Some(0x00));
    let message = reader.recv(WAIT).expect("devices/a/x delivered");
    assert_eq!(
        (message.topic.as_str(), message.payload.as_slice()),
        ("devices/a/x", &b"visible"[..])
    );
    assert!(reader.expect_nothing(QUIET));
}

/// `$share/<group>/<filter>` subscriptions are checked on the filter (it must lie within a read
/// grant), and each message goes to one member of the group, members taking turns.
pub fn shared_subscriptions_are_checked_on_their_filter_and_share_the_messages(
    launcher: &dyn Launcher,
) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let members: Vec<MqttClient> = ["member-1", "member-2"]
        .into_iter()
        .map(|id| {
            let token = idp.opaque_token("device-1", &["mqtt:read:sensors/#"]);
            let member = connected(broker.port(), Protocol::V5, id, &token);
            assert_eq!(member.subscribe("$share/workers/sensors/#", 1), 0x01, "{id}");
            assert_eq!(member.subscribe("$share/workers/alarms/#", 1), 0x87, "{id}");
            member
        })
        .collect();
    let publisher_token = idp.opaque_token("device-2", &["mqtt:write:sensors/#"]);
    let publisher = connected(broker.port(), Protocol::V5, "publisher", &publisher_token);
    for i in 0..6 {
        assert_eq!(publisher.publish(&format!("sensors/{i}"), b"m", 1, false), Some(0x00));
    }
    let received: Vec<Vec<String>> = members
        .iter()
        .map(|member| received_within(member, QUIET, &[]).into_iter().map(|m| m.topic).collect())
        .collect();
    let mut all: Vec<&String> = received.iter().flatten().collect();
    all.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("sensors/{i}")).collect();
    assert_eq!(all, expected.iter().collect::<Vec<_>>(), "each message once: {received:?}");
    assert!(received.iter().all(|got| got.len() == 3), "turns not taken: {received:?}");
}

/// A topic alias stands for the topic it was set with, and that topic's grants decide: an alias
/// set by a refused PUBLISH still names the refused topic, so publishing by the alias alone is
/// refused too and nothing reaches a subscriber of `#`.
pub fn a_topic_alias_is_checked_as_the_topic_it_stands_for(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let watcher_token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    let watcher = connected(broker.port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("#", 1), 0x01);

    let token = idp.opaque_token("device-1", &["mqtt:write:t/#"]);
    let mut raw = RawConnect::new(Protocol::V5, "aliaser");
    raw.username = Some(b"aliaser".to_vec());
    raw.password = Some(token.into_bytes());
    let mut publisher = RawSession::connect(broker.port(), &raw);
    assert!(publisher.outcome().is_accepted(), "{:?}", publisher.outcome());
    // (topic, alias, payload, PUBACK code); packet ids count from 1.
    let steps: [(&str, u16, &[u8], u8); 4] = [
        ("t/a", 1, b"1", 0x00),
        ("", 1, b"2", 0x00),
        ("secret/x", 2, b"3", 0x87),
        ("", 2, b"4", 0x87),
    ];
    for (id, (topic, alias, payload, expected)) in (1u16..).zip(steps) {
        let alias_property =
            Properties::new().with(property::TOPIC_ALIAS, PropertyValue::U16(alias));
        let packet =
            encode_publish_with(Protocol::V5, topic, payload, 1, false, Some(id), &alias_property);
        assert!(publisher.send_raw(&packet));
        match publisher.read_packet(WAIT) {
            RawRead::Packet(Packet::Puback { packet_id, code, .. }) => {
                assert_eq!((packet_id, code), (id, expected), "{topic:?} alias {alias}");
            }
            other => panic!("{topic:?} alias {alias}: {other:?}"),
        }
    }
    let delivered: Vec<(String, Vec<u8>)> =
        received_within(&watcher, QUIET, &[]).into_iter().map(|m| (m.topic, m.payload)).collect();
    assert_eq!(delivered, [("t/a".to_owned(), b"1".to_vec()), ("t/a".to_owned(), b"2".to_vec())]);
}

/// JWT access tokens are verified locally with the provider's keys (never introspected);
/// wrong audience and expired tokens are refused.
pub fn jwt_access_tokens_are_verified_locally_with_the_provider_keys(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let setup = Setup::new()
        .option("issuer", idp.issuer())
        .option("audience", AUDIENCE)
        .option("leeway", "0");
    let broker = launcher.start(&idp, &setup);
    let token = idp.jwt_token(
        "device-1",
        &["mqtt:write:devices/device-1/#", "mqtt:read:devices/device-1/#"],
        AUDIENCE,
    );
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("devices/device-1/#", 0), 0x00);
    round_trip(&client, "devices/device-1/t", true);
    assert_eq!(client.publish("devices/device-2/t", b"x", 1, false), Some(0x87));

    let other_audience = idp.jwt_token("device-1", &["mqtt:read:#"], "urn:mqtt:other");
    assert_eq!(
        connect(broker.port(), Protocol::V5, "a", &other_audience).err(),
        Some(ConnectRefused::Code(not_authorized(Protocol::V5)))
    );
    assert_eq!(
        connect(broker.port(), Protocol::V311, "a", &other_audience).err(),
        Some(ConnectRefused::Code(not_authorized(Protocol::V311)))
    );

    let short =
        idp.token(&TokenRequest::new("device-1", &["mqtt:read:#"]).resource(AUDIENCE).ttl_secs(1));
    let exp = crate::idp::jwt_claims(&short)["exp"].as_u64().unwrap();
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        connect(broker.port(), Protocol::V5, "b", &short).err(),
        Some(ConnectRefused::Code(not_authorized(Protocol::V5)))
    );
    assert_eq!(idp.stats().introspections, 0, "JWTs never go to introspection");
    broker.expect_log("token has expired", WAIT);
    broker.expect_log("token audience does not include oauth_audience", WAIT);
}

/// A revoked token keeps working while cached; after a cache flush it is refused.
pub fn revoked_token_is_refused_once_its_cache_entry_is_gone(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let token = idp.opaque_token("device-3", &["mqtt:read:#"]);
    connected(broker.port(), Protocol::V5, "device-3", &token).disconnect();
    idp.revoke("device-3", &token);
    // Still cached: accepted without asking.
    connected(broker.port(), Protocol::V5, "device-3", &token).disconnect();
    // SIGHUP flushes the cache; the next CONNECT asks again and learns of the revocation.
    broker.flush_cache();
    assert_eq!(
        connect(broker.port(), Protocol::V5, "device-3", &token).err(),
        Some(ConnectRefused::Code(not_authorized(Protocol::V5)))
    );
    broker.expect_log("token is not active", WAIT);
}

/// Users-file users (a human operator) and token devices on one listener, told apart by
/// `token_username`; operator passwords never reach the authorization server.
pub fn password_file_users_and_token_devices_share_a_broker(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let setup = Setup::new().option("token_username", "oauth2").user(User {
        name: "human",
        password: "human-pass",
        read: &["ops/#"],
        write: &["ops/#"],
    });
    let broker = launcher.start(&idp, &setup);
    let port = broker.port();
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
    assert_eq!(refused.err(), Some(ConnectRefused::Code(not_authorized(Protocol::V5))));
    assert_eq!(idp.stats().introspections, 1);
}

/// An authorization server that hangs or is gone refuses new logins (fail closed, within the
/// HTTP timeout) but leaves connected clients alone; no token ever reaches the log.
pub fn authorization_server_outage_refuses_new_logins_but_not_connected_clients(
    launcher: &dyn Launcher,
) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let token = idp.opaque_token(
        "device-1",
        &["mqtt:write:devices/device-1/#", "mqtt:read:devices/device-1/#"],
    );
    let fresh = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("devices/device-1/#", 0), 0x00);

    // The server hangs (stopped, socket still open): logins fail within the 1 s timeout.
    let status = std::process::Command::new("kill")
        .args(["-STOP", &idp.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    assert_eq!(
        connect(broker.port(), Protocol::V5, "device-2", &fresh).err(),
        Some(ConnectRefused::Code(0x87))
    );
    assert!(started.elapsed() < Duration::from_secs(4), "refusal took {:?}", started.elapsed());
    broker.expect_log("did not answer within 1s", WAIT);
    // Connected clients keep working.
    round_trip(&client, "devices/device-1/still-up", true);

    // Connection refused (server gone): same answer.
    let _ = std::process::Command::new("kill").args(["-CONT", &idp.pid().to_string()]).status();
    drop(idp);
    assert_eq!(
        connect(broker.port(), Protocol::V311, "device-2", &fresh).err(),
        Some(ConnectRefused::Code(5))
    );
    round_trip(&client, "devices/device-1/still-up-2", true);
    assert!(!broker.log().contains(&fresh), "a token reached the log");
}

/// A will is only published to a topic the client may write.
pub fn wills_are_checked_against_write_grants(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let watcher_token = idp.opaque_token("device-2", &["mqtt:read:#"]);
    let watcher = connected(broker.port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("#", 0), 0x00);

    let token = idp.opaque_token("device-1", &["mqtt:write:wills/device-1"]);
    let allowed = MqttClient::connect(
        broker.port(),
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
        broker.port(),
        Protocol::V311,
        ConnectOptions::new("device-1b")
            .credentials("device-1b", &token)
            .will("elsewhere/x", b"gone"),
    );
    match broker.will_check() {
        // Connected; the will is dropped when the connection ends.
        WillCheck::AtPublication => drop(refused.unwrap()),
        WillCheck::AtConnect => {
            assert_eq!(refused.err(), Some(ConnectRefused::Code(not_authorized(Protocol::V311))));
        }
    }
    broker.expect_log("denied Write on \"elsewhere/x\"", WAIT);
    assert!(watcher.expect_nothing(QUIET));
}

/// A users-file operator allowed everything.
pub const OPERATOR: User<'static> =
    User { name: "human", password: "human-pass", read: &["#"], write: &["#"] };

/// [`OPERATOR`], connected with MQTT 5 and subscribed to `filter` at QoS 1.
pub fn operator_watching(port: u16, filter: &str) -> MqttClient {
    let operator = MqttClient::connect(
        port,
        Protocol::V5,
        ConnectOptions::new("operator").credentials(OPERATOR.name, OPERATOR.password),
    )
    .unwrap();
    assert_eq!(operator.subscribe(filter, 1), 0x01);
    operator
}

/// How long the plugin used to keep a disconnected client's entry before it started answering
/// DEFER (issue #15): the checks below come after it on purpose.
const OLD_OFFLINE_GRACE: Duration = Duration::from_secs(60);

/// An MQTT 5 CONNECT with Clean Start 1 and a Session Expiry Interval, username and password.
fn v5_session_connect(client_id: &str, username: &str, password: &str, expiry: u32) -> RawConnect {
    let mut connect = RawConnect::new(Protocol::V5, client_id);
    connect.username = Some(username.as_bytes().to_vec());
    connect.password = Some(password.as_bytes().to_vec());
    connect.properties =
        Properties::new().with(property::SESSION_EXPIRY_INTERVAL, PropertyValue::U32(expiry));
    connect
}

/// A will on `topic` sent `delay_secs` after the connection ends.
fn delayed_will(topic: &str, delay_secs: u32) -> Will {
    let mut will = Will::new(topic, b"will");
    will.properties =
        Properties::new().with(property::WILL_DELAY_INTERVAL, PropertyValue::U32(delay_secs));
    will
}

/// Messages `client` receives within `window`, except those on `ignored` topics.
fn received_within(client: &MqttClient, window: Duration, ignored: &[&str]) -> Vec<Received> {
    let deadline = Instant::now() + window;
    let mut messages = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match client.recv(left) {
            Some(message) if ignored.contains(&message.topic.as_str()) => {}
            Some(message) => messages.push(message),
            None => break,
        }
    }
    messages
}

/// Everything the broker still does for a token client after its connection ended is decided
/// by that client's token, for as long as the broker does it, and never by the users file
/// under a username the client chose (issue #15, shown with a users-file operator allowed
/// everything and no `token_username`, the set-up the start-up warning is about):
/// - a token client cannot take the operator's username, so its delayed will (Will Delay 65 s,
///   Session Expiry 300), which the token does not grant, never exists: the login is the
///   operator's, and the token is not the operator's password;
/// - a delayed will the token grants is published;
/// - an MQTT 5 session kept by Session Expiry (Clean Start 1) receives, when it resumes, what
///   was queued for it more than a minute after it left.
pub fn what_the_broker_does_after_a_disconnect_follows_the_token(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new().user(OPERATOR));
    let port = broker.port();
    let operator = operator_watching(port, "#");

    let reader = idp.opaque_token("device-1", &["mqtt:read:devices/d1/#"]);
    let mut attacker = v5_session_connect("attacker", "human", &reader, 300);
    attacker.will = Some(delayed_will("ops/commands", 65));
    let attacker = RawSession::connect(port, &attacker);
    assert_eq!(attacker.outcome().code(), Some(not_authorized(Protocol::V5)));

    let writer = idp.opaque_token("device-2", &["mqtt:write:wills/device-2"]);
    let mut granted = v5_session_connect("device-2", "device-2", &writer, 300);
    granted.will = Some(delayed_will("wills/device-2", 65));
    let granted = RawSession::connect(port, &granted);
    assert!(granted.outcome().is_accepted(), "{:?}", granted.outcome());

    let subscriber = idp.opaque_token("device-3", &["mqtt:read:devices/d3/#"]);
    let mut kept =
        RawSession::connect(port, &v5_session_connect("device-3", "device-3", &subscriber, 3600));
    assert!(kept.outcome().is_accepted(), "{:?}", kept.outcome());
    assert_eq!(kept.subscribe("devices/d3/#", 1), Some(0x01));

    // Both wills start their delay; device-3 leaves cleanly and its session stays.
    let left = Instant::now();
    drop(attacker);
    drop(granted);
    kept.disconnect();

    // Past the grace period the plugin once had: nothing may have changed hands.
    std::thread::sleep(OLD_OFFLINE_GRACE + Duration::from_secs(2));
    assert_eq!(operator.publish("devices/d3/late", b"queued", 1, false), Some(0x00));
    let until_wills =
        (left + Duration::from_secs(65) + WAIT).saturating_duration_since(Instant::now());
    let wills = received_within(&operator, until_wills, &["devices/d3/late"]);
    let wills: Vec<&str> = wills.iter().map(|m| m.topic.as_str()).collect();

    let mut resumed = v5_session_connect("device-3", "device-3", &subscriber, 3600);
    resumed.clean = false;
    let mut resumed = RawSession::connect(port, &resumed);
    assert!(resumed.outcome().is_accepted(), "{:?}", resumed.outcome());
    let queued = resumed.recv_publish(WAIT).map(|m| (m.topic, m.payload));
    // All three outcomes in one report.
    assert_eq!(
        (wills, queued),
        (vec!["wills/device-2"], Some(("devices/d3/late".to_owned(), b"queued".to_vec()))),
        "expected: the forbidden will dropped, the granted will published, the queued message delivered"
    );
}

/// A 3 s token with `disconnect_on_expiry false`: from `exp` on its client can publish and
/// receive nothing.
pub fn expired_token_stops_every_publish_and_delivery(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new().option("disconnect_on_expiry", "false"));
    let token =
        idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]).ttl_secs(3));
    let exp = idp.introspect(&token)["exp"].as_u64().unwrap();
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("t/#", 1), 0x01);
    assert_eq!(client.publish("t/before", b"x", 1, false), Some(0x00));
    assert!(client.recv(WAIT).is_some());
    while oauth_core::now_epoch() < exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(client.publish("t/after", b"x", 1, false), Some(0x87));
    assert!(client.expect_nothing(QUIET));
    broker.expect_log("token expired", WAIT);
}

/// Milliseconds from the start of epoch second `exp` to now (negative before it).
fn millis_since_epoch_second(exp: u64) -> i128 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i128;
    now - i128::from(exp) * 1000
}

/// A 3 s token (default `disconnect_on_expiry`): its client is disconnected within about a
/// second after `exp`, and can log in again with a new token.
pub fn expired_token_disconnects_its_client_at_exp(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let token =
        idp.token(&TokenRequest::new("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]).ttl_secs(3));
    let exp = idp.introspect(&token)["exp"].as_u64().unwrap();
    let client = connected(broker.port(), Protocol::V5, "device-1", &token);
    assert_eq!(client.subscribe("t/#", 1), 0x01);
    assert_eq!(client.publish("t/before", b"x", 1, false), Some(0x00));
    assert!(client.recv(WAIT).is_some());
    let left = exp.saturating_sub(oauth_core::now_epoch());
    let end = client.wait_disconnected(Duration::from_secs(left + 5));
    let late_ms = millis_since_epoch_second(exp);
    let end = end.expect("disconnected at expiry");
    assert_eq!(end.reason_code, broker.expiry_disconnect_reason(), "{end:?}");
    assert!(late_ms >= 0, "disconnected {}ms before exp", -late_ms);
    assert!(late_ms <= 1_200, "disconnected {late_ms}ms after exp");
    broker.expect_log("disconnecting client \"device-1\": its token has expired", WAIT);

    let renewed = idp
        .token(&TokenRequest::new("device-1", &["mqtt:write:t/#", "mqtt:read:t/#"]).ttl_secs(60));
    let client = connected(broker.port(), Protocol::V5, "device-1", &renewed);
    assert_eq!(client.subscribe("t/#", 1), 0x01);
    round_trip(&client, "t/back", true);
}

/// Passwords that cannot be tokens and anonymous clients are refused, with no call to the
/// authorization server, and the broker keeps serving.
pub fn binary_and_oversized_passwords_are_refused_without_harm(launcher: &dyn Launcher) {
    let idp = Idp::start();
    let broker = launcher.start(&idp, &Setup::new());
    let port = broker.port();
    // Mosquitto hands plugins the password as a C string: "\0abc" arrives empty; the fallback
    // broker sees all bytes and rejects them as a token.
    let refused = not_authorized(Protocol::V311);
    for password in [&b"\0abc"[..], &[0xff, 0xfe, 0x00][..], &vec![b'a'; 65_535][..]] {
        let outcome = raw_connect_v311(port, "raw", Some(b"user"), Some(password));
        assert!(
            matches!(outcome, RawOutcome::Connack { code, .. } if code == refused),
            "{outcome:?}"
        );
    }
    let anonymous = raw_connect_v311(port, "anon", None, None);
    assert!(matches!(anonymous, RawOutcome::Connack { code: 5, .. }), "{anonymous:?}");
    assert_eq!(idp.stats().introspections, 0);
    let token = idp.opaque_token("device-1", &["mqtt:read:x"]);
    connected(port, Protocol::V5, "still-serving", &token);
}

/// Two issuers (issue #20 item 3): the server every scenario broker introspects at, with its
/// keys (the default profile), and a second server as profile `second`. Each server's JWTs and
/// opaque tokens get in with their own grants; a JWT signed by one server's key claiming the
/// other's `iss`, or an issuer neither is, is refused; each profile has its `$SYS` counters;
/// with the second server down, the first one's tokens still get in.
pub fn each_issuer_admits_its_own_tokens_and_none_vouches_for_the_other(launcher: &dyn Launcher) {
    use crate::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET};
    let first = Idp::start();
    let second = Idp::start();
    let setup = Setup::new()
        .option("issuer", first.issuer())
        .option("jwks_url", first.jwks_url())
        .option("stats_interval", "1")
        .option("issuers.second.issuer", second.issuer())
        .option("issuers.second.jwks_url", second.jwks_url())
        .option("issuers.second.introspection_url", second.introspection_url())
        .option("issuers.second.client_id", BROKER_CLIENT_ID)
        .option("issuers.second.client_secret", BROKER_CLIENT_SECRET);
    let broker = launcher.start(&first, &setup);
    let port = broker.port();
    let first_grants = ["mqtt:write:first/#", "mqtt:read:$SYS/broker/oauth/#"];
    let second_grants = ["mqtt:write:second/#"];

    let tokens = [
        ("first-jwt", first.jwt_token("device-1", &first_grants, AUDIENCE), "first/"),
        ("first-opaque", first.opaque_token("device-1", &first_grants), "first/"),
        ("second-jwt", second.jwt_token("device-2", &second_grants, AUDIENCE), "second/"),
        ("second-opaque", second.opaque_token("device-2", &second_grants), "second/"),
    ];
    let reader = first.opaque_token("device-3", &["mqtt:read:first/#", "mqtt:read:second/#"]);
    let reader = connected(port, Protocol::V5, "reader", &reader);
    assert_eq!(reader.subscribe("first/#", 0), 0x00);
    assert_eq!(reader.subscribe("second/#", 0), 0x00);
    for (client_id, token, own) in &tokens {
        let client = connected(port, Protocol::V5, client_id, token);
        assert_eq!(client.publish(&format!("{own}{client_id}"), b"x", 1, false), Some(0x00));
        let other = if *own == "first/" { "second/x" } else { "first/x" };
        assert_eq!(client.publish(other, b"x", 1, false), Some(0x87), "{client_id}");
    }
    assert_eq!(
        reader.topics_until_quiet(WAIT, QUIET),
        ["first/first-jwt", "first/first-opaque", "second/second-jwt", "second/second-opaque"]
    );

    // A server's key vouches for its own issuer only.
    let forged = |signer: &Idp, iss: &str| {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
        signer.sign(&serde_json::json!({
            "iss": iss, "aud": AUDIENCE, "exp": exp, "sub": "device-9", "scope": "mqtt:write:#"
        }))
    };
    for (signer, iss) in
        [(&first, second.issuer()), (&second, first.issuer()), (&first, "http://127.0.0.1:9")]
    {
        assert_eq!(
            connect(port, Protocol::V5, "forger", &forged(signer, iss)).err(),
            Some(ConnectRefused::Code(not_authorized(Protocol::V5))),
            "signed by {} claiming {iss}",
            signer.issuer()
        );
    }
    broker.expect_log("token is signed with a key not in the JWKS", WAIT);
    broker.expect_log("token issuer does not match oauth_issuer", WAIT);

    // Per-profile counters: the second server was asked for its keys and its opaque token.
    let watcher = connected(port, Protocol::V5, "watcher", &tokens[0].1);
    assert_eq!(watcher.subscribe("$SYS/broker/oauth/issuers/second/upstream/calls", 0), 0x00);
    let deadline = Instant::now() + WAIT;
    loop {
        let calls = watcher.recv(WAIT).expect("the second profile's counter is published");
        let calls: u64 = String::from_utf8(calls.payload).unwrap().parse().unwrap();
        if calls >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the second profile counts {calls} calls");
    }

    // The second server down: the first one's new tokens still get in; an opaque token only
    // the second one could vouch for is refused (unchecked), never let through.
    let late_first = first.opaque_token("device-1", &first_grants);
    let late_second = second.opaque_token("device-2", &second_grants);
    drop(second);
    connected(port, Protocol::V5, "late-first", &late_first);
    assert_eq!(
        connect(port, Protocol::V5, "late-second", &late_second).err(),
        Some(ConnectRefused::Code(not_authorized(Protocol::V5)))
    );
}
