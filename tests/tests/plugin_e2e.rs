//! The plugin inside a real Mosquitto 2.0, with the real oidc-provider as authorization server
//! and real MQTT 3.1.1 / 5 clients: exact CONNACK/SUBACK/PUBACK codes and which messages arrive.
//!
//! The scenarios shared with the fallback broker live in `mosquitto_oauth_e2e::scenarios`; this
//! file runs them against Mosquitto and keeps the tests only the plugin has (legacy interface,
//! gomozzie options, Mosquitto's own configuration handling, per-listener instances).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Duration;

use mosquitto_oauth_e2e::idp::{BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, Ports, plugin_path};
use mosquitto_oauth_e2e::mqtt::{
    MqttClient, Properties, PropertyValue, Protocol, RawConnect, RawOutcome, RawSession, Will,
    property,
};
use mosquitto_oauth_e2e::scenarios::{
    self, BrokerUnderTest, Launcher, OPERATOR, QUIET, Setup, WAIT, WillCheck, operator_watching,
};

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

fn broker_with(
    api: Api,
    config: MosquittoConfig,
    body: impl FnOnce(&Ports) -> String,
) -> Mosquitto {
    let config = match api {
        Api::V5 => config,
        Api::V4 => config.env("MOSQUITTO_OAUTH_PLUGIN_API", "4"),
    };
    config.start(body)
}

/// Mosquitto with the plugin, as the scenarios see it.
struct PluginBroker(Mosquitto);

impl BrokerUnderTest for PluginBroker {
    fn name(&self) -> &str {
        "mosquitto + plugin"
    }

    fn port(&self) -> u16 {
        self.0.port()
    }

    /// SIGHUP: the plugin flushes its token cache on reload.
    fn flush_cache(&self) {
        self.0.reload();
    }

    fn log(&self) -> String {
        self.0.log()
    }

    fn expect_log(&self, needle: &str, timeout: Duration) {
        self.0.expect_log(needle, timeout);
    }

    /// The plugin kicks the client (`mosquitto_kick_client_by_clientid`): DISCONNECT 0x98.
    fn expiry_disconnect_reason(&self) -> Option<u8> {
        Some(0x98)
    }

    /// Mosquitto runs the ACL check on the will when it publishes it.
    fn will_check(&self) -> WillCheck {
        WillCheck::AtPublication
    }
}

/// Mosquitto with one listener, the plugin (`api`) and, for users, `password_file` + `acl_file`.
struct PluginLauncher(Api);

impl Launcher for PluginLauncher {
    fn start(&self, idp: &Idp, setup: &Setup<'_>) -> Box<dyn BrokerUnderTest> {
        let extra: String = setup
            .options
            .iter()
            .map(|(name, value)| format!("plugin_opt_oauth_{name} {value}\n"))
            .collect();
        let plugin = plugin_lines(idp, &extra);
        let config = MosquittoConfig::new();
        let mut files = String::new();
        if !setup.users.is_empty() {
            let pairs: Vec<(&str, &str)> =
                setup.users.iter().map(|u| (u.name, u.password)).collect();
            let passwd = config.password_file(&pairs);
            let mut acl = String::new();
            for user in &setup.users {
                acl.push_str(&format!("user {}\n", user.name));
                for filter in user.read {
                    let access = if user.write.contains(filter) { "readwrite" } else { "read" };
                    acl.push_str(&format!("topic {access} {filter}\n"));
                }
                for filter in user.write.iter().filter(|f| !user.read.contains(f)) {
                    acl.push_str(&format!("topic write {filter}\n"));
                }
            }
            let acl = config.write_file("acl", acl);
            files = format!("password_file {}\nacl_file {}\n", passwd.display(), acl.display());
        }
        let mosquitto = broker_with(self.0, config, |ports| {
            format!("listener {} 127.0.0.1\nallow_anonymous false\n{files}{plugin}", ports.main)
        });
        Box::new(PluginBroker(mosquitto))
    }
}

const PLUGIN: PluginLauncher = PluginLauncher(Api::V5);

use scenarios::{connected, round_trip};

#[test]
fn opaque_token_scopes_decide_publish_and_subscribe() {
    scenarios::opaque_token_scopes_decide_publish_and_subscribe(&PLUGIN);
}

#[test]
fn legacy_v4_interface_enforces_the_same_rules() {
    scenarios::opaque_token_scopes_decide_publish_and_subscribe(&PluginLauncher(Api::V4));
}

#[test]
fn sys_topics_need_an_explicit_grant_and_carry_the_counters() {
    scenarios::sys_topics_need_an_explicit_grant_and_carry_the_counters(&PLUGIN);
}

#[test]
fn each_issuer_admits_its_own_tokens_and_none_vouches_for_the_other() {
    scenarios::each_issuer_admits_its_own_tokens_and_none_vouches_for_the_other(&PLUGIN);
}

#[test]
fn a_topic_alias_is_checked_as_the_topic_it_stands_for() {
    scenarios::a_topic_alias_is_checked_as_the_topic_it_stands_for(&PLUGIN);
}

#[test]
fn shared_subscriptions_are_checked_on_their_filter_and_share_the_messages() {
    scenarios::shared_subscriptions_are_checked_on_their_filter_and_share_the_messages(&PLUGIN);
}

#[test]
fn delivery_is_filtered_by_the_current_read_grants() {
    scenarios::delivery_is_filtered_by_the_current_read_grants(&PLUGIN);
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
    scenarios::jwt_access_tokens_are_verified_locally_with_the_provider_keys(&PLUGIN);
}

#[test]
fn revoked_token_is_refused_once_its_cache_entry_is_gone() {
    scenarios::revoked_token_is_refused_once_its_cache_entry_is_gone(&PLUGIN);
}

#[test]
fn password_file_users_and_token_devices_share_a_broker() {
    scenarios::password_file_users_and_token_devices_share_a_broker(&PLUGIN);
}

#[test]
fn authorization_server_outage_refuses_new_logins_but_not_connected_clients() {
    scenarios::authorization_server_outage_refuses_new_logins_but_not_connected_clients(&PLUGIN);
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
    scenarios::wills_are_checked_against_write_grants(&PLUGIN);
}

#[test]
fn what_the_broker_does_after_a_disconnect_follows_the_token() {
    scenarios::what_the_broker_does_after_a_disconnect_follows_the_token(&PLUGIN);
}

#[test]
fn expired_token_stops_every_publish_and_delivery() {
    scenarios::expired_token_stops_every_publish_and_delivery(&PLUGIN);
}

#[test]
fn expired_token_disconnects_its_client_at_exp() {
    scenarios::expired_token_disconnects_its_client_at_exp(&PLUGIN);
}

#[test]
fn binary_and_oversized_passwords_are_refused_without_harm() {
    scenarios::binary_and_oversized_passwords_are_refused_without_harm(&PLUGIN);
}

/// The layout of `mosquitto/examples/token-username.conf` on one listener (a users-file
/// operator allowed everything, subscribed to `ops/#`), with or without `token_username`.
fn broker_with_an_operator(
    idp: &Idp,
    token_username: bool,
) -> (Box<dyn BrokerUnderTest>, MqttClient) {
    let mut setup = Setup::new().user(OPERATOR);
    if token_username {
        setup = setup.option("token_username", "oauth2");
    }
    let broker = PLUGIN.start(idp, &setup);
    let operator = operator_watching(broker.port(), "ops/#");
    (broker, operator)
}

/// Issue #15, case 1: a token that may only read connects with MQTT 5 enhanced authentication
/// and a will on `ops/commands`. Under the operator's username the CONNECT is refused, with
/// `token_username` (a token login takes the marker username) and without (the name is a
/// password_file user's). Under another username, a failed re-authentication revokes the
/// session, so the plugin denies its will instead of leaving it to the ACL file.
#[test]
fn a_token_client_can_borrow_neither_an_operators_username_nor_its_acl_file() {
    let idp = Idp::start();
    let reader = idp.opaque_token("device-1", &["mqtt:read:devices/d1/#"]);
    for (token_username, username) in [(false, "device-1"), (false, "human"), (true, "human")] {
        let (broker, operator) = broker_with_an_operator(&idp, token_username);
        let mut connect = RawConnect::new(Protocol::V5, "attacker");
        connect.username = Some(username.as_bytes().to_vec());
        connect.properties = Properties::new()
            .with(property::AUTHENTICATION_METHOD, PropertyValue::String("OAUTHBEARER".into()))
            .with(property::AUTHENTICATION_DATA, PropertyValue::Binary(reader.as_bytes().to_vec()));
        connect.will = Some(Will::new("ops/commands", b"from the attacker"));
        let mut attacker = RawSession::connect(broker.port(), &connect);
        if token_username {
            assert_eq!(attacker.outcome().code(), Some(0x87), "{:?}", attacker.outcome());
            broker.expect_log(
                "token logins use the username \"oauth2\" (oauth_token_username), not \"human\"",
                WAIT,
            );
        } else if username == "human" {
            assert_eq!(attacker.outcome().code(), Some(0x87), "{:?}", attacker.outcome());
            broker.expect_log("\"human\" is a password_file user, not a token login", WAIT);
        } else {
            assert!(attacker.outcome().is_accepted(), "{:?}", attacker.outcome());
            assert_eq!(attacker.publish_qos1("ops/commands", b"direct"), Some(0x87));
            let answer = attacker.reauth("OAUTHBEARER", b"not-a-token");
            assert!(
                matches!(
                    answer,
                    RawOutcome::Connack { code: 0x87, .. }
                        | RawOutcome::Disconnect { code: 0x87, .. }
                ),
                "{answer:?}"
            );
            let leaked = operator.recv(WAIT);
            assert!(leaked.is_none(), "the operator received the attacker's will: {leaked:?}");
            broker.expect_log("\"attacker\" re-authentication refused", WAIT);
            broker.expect_log(
                "denied Write on \"ops/commands\" for \"attacker\": token revoked",
                WAIT,
            );
        }
        assert!(operator.expect_nothing(QUIET), "the operator received the attacker's message");
    }
}

/// Issue #15, case 4 (Mosquitto 2.1, where logins are delayed): a client leaves while its login
/// waits for the authorization server, and another client connects, likely on the address the
/// first one's client object had. The late answer belongs to the first client only: the second
/// keeps its own grants.
#[test]
fn a_delayed_login_answer_reaches_only_the_client_that_asked() {
    let idp = Idp::start();
    let broker = PLUGIN.start(&idp, &Setup::new());
    let port = broker.port();
    let second_token = idp.opaque_token("device-2", &["mqtt:write:second/#", "mqtt:read:second/#"]);
    // The second client's token is cached, so its later login is answered at once.
    connected(port, Protocol::V5, "second", &second_token).disconnect();
    idp.set_delay(800);
    let first_token = idp.opaque_token("device-1", &["mqtt:write:#"]);
    let mut first = RawConnect::new(Protocol::V5, "first");
    first.username = Some(b"first".to_vec());
    first.password = Some(first_token.into_bytes());
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket.write_all(&first.encode()).unwrap();
    // It leaves once its token is at the authorization server.
    let asked = std::time::Instant::now();
    while idp.stats().introspections < 2 && asked.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(socket);
    let delayed_logins = broker.log().contains("mosquitto version 2.1");
    let second = connected(port, Protocol::V5, "second", &second_token);
    assert_eq!(second.subscribe("second/#", 1), 0x01);
    if delayed_logins {
        // The late answer has come back (and, before issue #15 was fixed, was applied to the
        // address the second client now has).
        let answered = std::time::Instant::now();
        while !broker.log().contains("answer for \"first\"")
            && !broker.log().contains("client \"first\" accepted")
            && answered.elapsed() < WAIT
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    round_trip(&second, "second/after", true);
    assert_eq!(second.publish("second/acked", b"x", 1, false), Some(0x00));
    if delayed_logins {
        // 2.1 frees a client that leaves during a delayed login without any event: its answer
        // is dropped when another login took the address (the case this test is after), and
        // otherwise applied to the freed address, where the next login there replaces it.
        let log = broker.log();
        assert!(
            log.contains("dropping a stale delayed login answer for \"first\"")
                || log.contains("client \"first\" accepted"),
            "{log}"
        );
    }
}
