//! The plugin's behaviour behind a fake host: every pitfall of Mosquitto's plugin interface
//! (address reuse, same-id reconnects, durable sessions, wills after DISCONNECT, NULL and binary
//! credentials) and the decisions for each kind of login.
#![allow(clippy::unwrap_used)]

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mosquitto_oauth::instance::{AclDecision, AuthDecision, Host, Instance, Login};
use mosquitto_oauth::mixed_setup::LocalUsers;
use mosquitto_oauth::settings::PluginConfig;
use mosquitto_oauth::worker::IDLE_EXIT;
use oauth_core::Access;
use serde_json::json;

#[derive(Default)]
struct FakeHost {
    published: RefCell<Vec<(String, String)>>,
    kicked: RefCell<Vec<String>>,
    delayed: bool,
    completed: RefCell<Vec<(String, AuthDecision)>>,
    /// The plugin's clock once a test has set it; the real one before.
    clock: Cell<Option<u64>>,
}

impl FakeHost {
    /// Moves the plugin's clock to `exp`, the first second in which a token with that `exp`
    /// has expired.
    fn move_clock_to(&self, exp: u64) {
        self.clock.set(Some(exp));
    }
}

impl Host for &FakeHost {
    fn publish_retained(&self, topic: &str, payload: &[u8]) {
        self.published
            .borrow_mut()
            .push((topic.to_owned(), String::from_utf8_lossy(payload).into_owned()));
    }

    fn kick(&self, client_id: &str) {
        self.kicked.borrow_mut().push(client_id.to_owned());
    }

    fn supports_delayed_login(&self) -> bool {
        self.delayed
    }

    fn complete_login(&self, client_id: &str, decision: AuthDecision) {
        self.completed.borrow_mut().push((client_id.to_owned(), decision));
    }

    fn epoch_seconds(&self) -> u64 {
        self.clock.get().unwrap_or_else(now)
    }
}

fn keys(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../auth-core/tests/keys").join(name)
}

fn now() -> u64 {
    oauth_core::now_epoch()
}

fn jwt(scope: &str, exp: u64, extra: serde_json::Value) -> String {
    let mut claims = json!({"exp": exp, "sub": "dev1", "scope": scope, "username": "alice"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let pem = std::fs::read(keys("rsa-1.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn instance<'h>(host: &'h FakeHost, extra: &[(&str, &str)]) -> Instance<&'h FakeHost> {
    let jwks = keys("jwks-1.json");
    let mut pairs =
        vec![("oauth_jwks_file", jwks.to_str().unwrap()), ("oauth_stats_interval", "1")];
    pairs.extend_from_slice(extra);
    Instance::new(host, PluginConfig::from_pairs(pairs).unwrap(), 1).unwrap()
}

fn login<'a>(address: usize, client_id: &'a str, password: Option<&'a [u8]>) -> Login<'a> {
    Login {
        address,
        client_id: Some(client_id),
        username: None,
        password,
        outlives_connection: false,
        certificate: None,
    }
}

const DEVICE_SCOPES: &str = "mqtt:write:devices/%c/# mqtt:read:devices/%c/cmd mqtt:write:wills/#";

/// An `exp` at least one whole second away, so the login before it cannot already be past it
/// on a loaded machine (`now() + 1` may be a millisecond away).
fn soon() -> u64 {
    now() + 2
}

#[test]
fn valid_token_is_accepted_and_its_grants_decide_acls() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let outcome = plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    assert_eq!(outcome.decision, AuthDecision::Accept);
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Write, "devices/dev1/t"),
        AclDecision::Allow
    );
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Write, "devices/dev2/t"),
        AclDecision::Deny
    );
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Subscribe, "devices/dev1/cmd"),
        AclDecision::Allow
    );
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Subscribe, "devices/#"),
        AclDecision::Deny
    );
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Unsubscribe, "anything"),
        AclDecision::Allow
    );
}

#[test]
fn clients_we_did_not_authenticate_are_deferred() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    assert_eq!(plugin.acl_check(9, Some("cert-user"), Access::Write, "a"), AclDecision::Defer);
    assert_eq!(plugin.acl_check(9, None, Access::Read, "a"), AclDecision::Defer);
}

#[test]
fn null_and_empty_passwords_are_left_to_other_mechanisms() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    assert_eq!(plugin.login(&login(1, "c", None)).decision, AuthDecision::Defer);
    assert_eq!(plugin.login(&login(1, "c", Some(b""))).decision, AuthDecision::Defer);
    let anonymous = Login {
        address: 1,
        client_id: Some("c"),
        username: None,
        password: None,
        outlives_connection: false,
        certificate: None,
    };
    assert_eq!(plugin.login(&anonymous).decision, AuthDecision::Defer);
    let no_id = Login {
        address: 1,
        client_id: None,
        username: None,
        password: Some(b"x.y.z"),
        outlives_connection: false,
        certificate: None,
    };
    assert_eq!(plugin.login(&no_id).decision, AuthDecision::Defer);
}

#[test]
fn binary_and_invalid_passwords_are_deferred_not_crashing() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    for password in [&[0xff, 0x00, 0x41][..], &[0x80; 65_536][..], b"password-file-password"] {
        assert_eq!(plugin.login(&login(1, "c", Some(password))).decision, AuthDecision::Defer);
    }
    assert_eq!(plugin.acl_check(1, Some("c"), Access::Write, "a"), AclDecision::Defer);
}

#[test]
fn token_username_marks_token_logins_and_others_are_deferred_untouched() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[("oauth_token_username", "oauth2")]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let human = Login {
        address: 1,
        client_id: Some("op"),
        username: Some("human"),
        password: Some(token.as_bytes()),
        outlives_connection: false,
        certificate: None,
    };
    assert_eq!(plugin.login(&human).decision, AuthDecision::Defer);
    assert_eq!(
        plugin.authenticator().metrics().snapshot().cache_misses,
        0,
        "no validation attempted"
    );
    let device = Login { username: Some("oauth2"), client_id: Some("dev1"), address: 2, ..human };
    assert_eq!(plugin.login(&device).decision, AuthDecision::Accept);
}

#[test]
fn username_claim_is_handed_to_the_broker() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[("oauth_username_claim", "username")]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let outcome = plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    assert_eq!(outcome.username.as_deref(), Some("alice"));
}

#[test]
fn upstream_failure_denies_the_login() {
    let host = FakeHost::default();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/introspect");
    let plugin = instance(
        &host,
        &[
            ("oauth_introspection_url", &url),
            ("oauth_client_id", "b"),
            ("oauth_client_secret", "s"),
        ],
    );
    assert_eq!(plugin.login(&login(1, "c", Some(b"opaque-token"))).decision, AuthDecision::Deny);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_denied, 1);
}

#[test]
fn reused_client_address_does_not_inherit_grants() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(7, "token-client", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    plugin.disconnected(7, Some("token-client"));
    // A certificate user gets the same address without any login callback.
    assert_eq!(plugin.acl_check(7, Some("cert-client"), Access::Write, "x"), AclDecision::Defer);
    // A password-file user logs in on the same address: the old entry is dropped.
    assert_eq!(
        plugin.login(&login(7, "token-client", Some(b"file-password"))).decision,
        AuthDecision::Defer
    );
    assert_eq!(plugin.acl_check(7, Some("token-client"), Access::Write, "x"), AclDecision::Defer);
}

#[test]
fn same_id_reconnect_survives_the_old_connections_disconnect() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    // The new connection authenticates before the old one's DISCONNECT arrives.
    plugin.login(&login(2, "dev1", Some(token.as_bytes())));
    plugin.disconnected(1, Some("dev1"));
    assert_eq!(plugin.acl_check(2, Some("dev1"), Access::Write, "x"), AclDecision::Allow);
}

#[test]
fn will_is_checked_after_disconnect_with_the_clients_grants() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    plugin.disconnected(1, Some("dev1"));
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "wills/dev1"), AclDecision::Allow);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "elsewhere"), AclDecision::Deny);
}

#[test]
fn durable_session_keeps_receiving_queued_messages_after_disconnect() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let durable = Login { outlives_connection: true, ..login(1, "dev1", Some(token.as_bytes())) };
    plugin.login(&durable);
    let transient = jwt(DEVICE_SCOPES, now() + 600, json!({"jti": "2"}));
    plugin.login(&login(2, "dev2", Some(transient.as_bytes())));
    plugin.disconnected(1, Some("dev1"));
    plugin.disconnected(2, Some("dev2"));
    plugin.tick(Instant::now() + Duration::from_secs(2));
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Read, "devices/dev1/cmd"),
        AclDecision::Allow
    );
    assert_eq!(
        plugin.acl_check(2, Some("dev2"), Access::Read, "devices/dev2/cmd"),
        AclDecision::Defer
    );
    assert_eq!(plugin.client_count(), 1);
}

#[test]
fn expired_token_denies_every_check() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let exp = soon();
    let token = jwt("mqtt:write:# mqtt:read:#", exp, json!({}));
    assert_eq!(
        plugin.login(&login(1, "dev1", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    host.move_clock_to(exp);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Deny);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Read, "a"), AclDecision::Deny);
}

#[test]
fn two_instances_keep_separate_state() {
    let host = FakeHost::default();
    let first = instance(&host, &[]);
    let second = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    first.login(&login(1, "dev1", Some(token.as_bytes())));
    assert_eq!(first.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Allow);
    assert_eq!(second.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Defer);
    assert_eq!(second.authenticator().metrics().snapshot().connects_accepted, 0);
}

#[test]
fn counters_are_published_under_sys_on_tick() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    plugin.acl_check(1, Some("dev1"), Access::Write, "a");
    plugin.acl_check(1, Some("dev1"), Access::Read, "a");
    plugin.tick(Instant::now());
    let published = host.published.borrow().clone();
    let value = |topic: &str| published.iter().find(|(t, _)| t == topic).map(|(_, v)| v.clone());
    assert_eq!(value("$SYS/broker/oauth/connects/accepted").as_deref(), Some("1"));
    assert_eq!(value("$SYS/broker/oauth/acl/allowed").as_deref(), Some("1"));
    assert_eq!(value("$SYS/broker/oauth/acl/denied").as_deref(), Some("1"));
    assert_eq!(value("$SYS/broker/oauth/cache/misses").as_deref(), Some("1"));
    assert_eq!(value("$SYS/broker/oauth/clients").as_deref(), Some("1"));
    // Not again before the interval has passed.
    let count = published.len();
    plugin.tick(Instant::now());
    assert_eq!(host.published.borrow().len(), count);
}

#[test]
fn reload_flushes_cached_verdicts_but_keeps_sessions() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    plugin.login(&login(1, "dev1", Some(token.as_bytes())));
    assert_eq!(plugin.authenticator().cached_entries(), 1);
    plugin.reload();
    assert_eq!(plugin.authenticator().cached_entries(), 0);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Allow);
}

#[test]
fn placeholder_grants_are_refused_for_client_ids_with_topic_syntax() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(1, "a/b", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    assert_eq!(plugin.acl_check(1, Some("a/b"), Access::Write, "devices/a/b/x"), AclDecision::Deny);
    assert_eq!(plugin.acl_check(1, Some("a/b"), Access::Write, "wills/x"), AclDecision::Allow);
}

#[test]
fn expiry_queue_is_bounded_by_connected_clients_not_by_logins() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    for address in 1..=500 {
        plugin.login(&login(address, "dev1", Some(token.as_bytes())));
        plugin.disconnected(address, Some("dev1"));
    }
    plugin.login(&login(1000, "dev2", Some(token.as_bytes())));
    assert_eq!(plugin.queued_expiries(), 501, "one per login until the next purge");
    plugin.tick(Instant::now() + Duration::from_secs(2));
    assert_eq!(plugin.queued_expiries(), 1, "only the connected client's expiry is left");
}

#[test]
fn expired_session_is_kicked_on_tick_but_not_a_newer_connection_of_the_same_id() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let exp = soon();
    let short = jwt("mqtt:write:#", exp, json!({}));
    plugin.login(&login(1, "dev1", Some(short.as_bytes())));
    let other = jwt("mqtt:write:#", exp, json!({"jti": "other"}));
    plugin.login(&login(2, "dev2", Some(other.as_bytes())));
    // dev2 reconnects with a longer-lived token before its old one expires.
    let renewed = jwt("mqtt:write:#", now() + 600, json!({"jti": "renewed"}));
    plugin.login(&login(3, "dev2", Some(renewed.as_bytes())));
    plugin.tick(Instant::now());
    assert!(host.kicked.borrow().is_empty(), "nothing has expired yet");
    host.move_clock_to(exp);
    plugin.tick(Instant::now());
    assert_eq!(*host.kicked.borrow(), ["dev1"]);
    plugin.tick(Instant::now());
    assert_eq!(host.kicked.borrow().len(), 1, "kicked once");
}

#[test]
fn expiry_kick_can_be_disabled() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[("oauth_disconnect_on_expiry", "false")]);
    let exp = soon();
    plugin.login(&login(1, "dev1", Some(jwt("mqtt:write:#", exp, json!({})).as_bytes())));
    host.move_clock_to(exp);
    plugin.tick(Instant::now());
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Deny);
    plugin.tick(Instant::now());
    assert!(host.kicked.borrow().is_empty());
}

#[test]
fn expiry_found_by_an_acl_check_is_kicked_at_the_next_login() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let exp = soon();
    plugin.login(&login(1, "dev1", Some(jwt("mqtt:write:#", exp, json!({})).as_bytes())));
    host.move_clock_to(exp);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a"), AclDecision::Deny);
    assert!(host.kicked.borrow().is_empty(), "never kicked from inside an ACL check");
    plugin.login(&login(2, "someone-else", None));
    assert_eq!(*host.kicked.borrow(), ["dev1"]);
}

#[test]
fn enhanced_auth_accepts_raw_and_oauthbearer_tokens_and_reauth_swaps_grants() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let first = jwt("mqtt:write:a/#", now() + 600, json!({}));
    let connect = Login {
        address: 1,
        client_id: Some("dev1"),
        username: None,
        password: None,
        outlives_connection: false,
        certificate: None,
    };
    let outcome = plugin.extended_auth(&connect, Some("OAUTHBEARER"), first.as_bytes());
    assert_eq!(outcome.decision, AuthDecision::Accept);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Allow);

    let second = jwt("mqtt:write:b/#", now() + 600, json!({"jti": "2"}));
    let response = format!("n,,\x01auth=Bearer {second}\x01\x01");
    let outcome = plugin.extended_auth(&connect, Some("OAUTHBEARER"), response.as_bytes());
    assert_eq!(outcome.decision, AuthDecision::Accept);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Deny);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "b/x"), AclDecision::Allow);

    // Another client object on the address, with another method: not ours.
    let other = Login { address: 2, client_id: Some("dev2"), ..connect };
    assert_eq!(
        plugin.extended_auth(&other, Some("SCRAM-SHA-256"), b"x").decision,
        AuthDecision::Defer
    );
    assert_eq!(plugin.extended_auth(&other, None, b"x").decision, AuthDecision::Defer);
}

#[test]
fn failed_reauthentication_revokes_the_session_and_its_will_instead_of_deferring() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let connect = Login {
        address: 1,
        client_id: Some("dev1"),
        username: Some("human"),
        password: None,
        outlives_connection: true,
        certificate: None,
    };
    assert_eq!(
        plugin.extended_auth(&connect, Some("OAUTHBEARER"), token.as_bytes()).decision,
        AuthDecision::Accept
    );
    assert_eq!(
        plugin.extended_auth(&connect, Some("OAUTHBEARER"), b"garbage").decision,
        AuthDecision::Deny
    );
    // Mosquitto disconnects the client and checks its will: the plugin still answers, and
    // denies even what the token granted.
    plugin.disconnected(1, Some("dev1"));
    plugin.tick(Instant::now() + Duration::from_secs(120));
    for (access, topic) in [
        (Access::Write, "wills/dev1"),
        (Access::Write, "ops/commands"),
        (Access::Read, "devices/dev1/cmd"),
    ] {
        assert_eq!(plugin.acl_check(1, Some("dev1"), access, topic), AclDecision::Deny, "{topic}");
    }
}

#[test]
fn an_admitted_client_is_refused_not_deferred_by_any_later_login_of_the_same_object() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let connect = Login { outlives_connection: true, ..login(1, "dev1", Some(token.as_bytes())) };
    assert_eq!(plugin.login(&connect).decision, AuthDecision::Accept);
    // Mosquitto 2.1 re-runs the login of connected clients on SIGHUP: whatever it carries now,
    // the client is not handed to the password file.
    let password_login = Login { password: Some(b"file-password"), ..connect };
    assert_eq!(plugin.login(&password_login).decision, AuthDecision::Deny);
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Write, "devices/dev1/t"),
        AclDecision::Deny
    );
    // Enhanced auth with another method on an admitted client: refused as well.
    let second = Login { address: 2, client_id: Some("dev2"), ..connect };
    assert_eq!(plugin.login(&second).decision, AuthDecision::Accept);
    assert_eq!(
        plugin.extended_auth(&second, Some("SCRAM-SHA-256"), b"x").decision,
        AuthDecision::Deny
    );
    assert_eq!(plugin.acl_check(2, Some("dev2"), Access::Write, "wills/x"), AclDecision::Deny);
}

#[test]
fn mqtt5_sessions_stay_owned_after_disconnect_until_their_address_is_reused() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let exp = now() + 3;
    let token = jwt(DEVICE_SCOPES, exp, json!({}));
    let v5 = Login { outlives_connection: true, ..login(1, "dev1", Some(token.as_bytes())) };
    assert_eq!(plugin.login(&v5).decision, AuthDecision::Accept);
    plugin.disconnected(1, Some("dev1"));
    // Long past any fixed grace period: queued messages keep their grants while the token lasts.
    plugin.tick(Instant::now() + Duration::from_secs(3600));
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Read, "devices/dev1/cmd"),
        AclDecision::Allow
    );
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Read, "ops/x"), AclDecision::Deny);
    host.move_clock_to(exp);
    plugin.tick(Instant::now() + Duration::from_secs(7200));
    // Expired: everything denied, nothing deferred.
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Read, "devices/dev1/cmd"),
        AclDecision::Deny
    );
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "ops/x"), AclDecision::Deny);
    assert_eq!(plugin.client_count(), 1);
    // A new client object on that address: Mosquitto freed the old one.
    let next = login(1, "dev1", Some(b"file-password"));
    assert_eq!(plugin.login(&next).decision, AuthDecision::Defer);
    assert_eq!(plugin.client_count(), 0);
}

#[test]
fn a_will_is_decided_by_the_grants_as_they_were_when_the_client_left() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    let exp = soon();
    let token = jwt(DEVICE_SCOPES, exp, json!({}));
    let left_in_time =
        Login { outlives_connection: true, ..login(1, "dev1", Some(token.as_bytes())) };
    let kicked = Login { address: 2, client_id: Some("dev2"), ..left_in_time };
    plugin.login(&left_in_time);
    plugin.login(&kicked);
    plugin.disconnected(1, Some("dev1"));
    host.move_clock_to(exp);
    plugin.tick(Instant::now());
    assert_eq!(*host.kicked.borrow(), ["dev2"]);
    plugin.disconnected(2, Some("dev2"));
    // A delayed will sent after `exp`: published for the client that left while its token was
    // valid, refused for the one disconnected because it had expired.
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "wills/dev1"), AclDecision::Allow);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "ops/commands"), AclDecision::Deny);
    assert_eq!(plugin.acl_check(2, Some("dev2"), Access::Write, "wills/dev2"), AclDecision::Deny);
    // Queued messages need a valid token now.
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Read, "devices/dev1/cmd"),
        AclDecision::Deny
    );
}

#[test]
fn enhanced_auth_obeys_the_token_username() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[("oauth_token_username", "oauth2")]);
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let connect = |address, username| Login {
        address,
        client_id: Some("dev1"),
        username,
        password: None,
        outlives_connection: false,
        certificate: None,
    };
    let human =
        plugin.extended_auth(&connect(1, Some("human")), Some("OAUTHBEARER"), token.as_bytes());
    assert_eq!(human.decision, AuthDecision::Deny);
    assert_eq!(
        plugin.acl_check(1, Some("dev1"), Access::Write, "devices/dev1/t"),
        AclDecision::Defer
    );
    let marker =
        plugin.extended_auth(&connect(2, Some("oauth2")), Some("OAUTHBEARER"), token.as_bytes());
    assert_eq!((marker.decision, marker.username), (AuthDecision::Accept, None));
    // No username: the client gets the marker, so no other mechanism can take it for a user.
    let none = plugin.extended_auth(&connect(3, None), Some("OAUTHBEARER"), token.as_bytes());
    assert_eq!((none.decision, none.username.as_deref()), (AuthDecision::Accept, Some("oauth2")));
}

#[test]
fn delayed_login_answer_never_reaches_another_client_on_the_same_address() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let plugin = slowly_introspecting_instance(&host, Duration::from_millis(300), &[]);
    assert_eq!(plugin.login(&login(5, "first", Some(b"opaque-1"))).decision, AuthDecision::Delayed);
    // It leaves while its token is checked (Mosquitto 2.0 clears the id of such a client), and
    // another client gets the address: a JWT, verified locally at once.
    plugin.disconnected(5, None);
    let token = jwt("mqtt:write:second/#", now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(5, "second", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    // The late answer arrives and is applied (or not) by the next TICK.
    let started = Instant::now();
    while !plugin.reports_waiting() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(plugin.reports_waiting(), "the delayed login was never answered");
    plugin.tick(Instant::now());
    assert!(host.completed.borrow().is_empty(), "{:?}", host.completed.borrow());
    assert_eq!(plugin.acl_check(5, Some("second"), Access::Write, "second/x"), AclDecision::Allow);
    assert_eq!(plugin.acl_check(5, Some("first"), Access::Write, "a/x"), AclDecision::Defer);
}

#[test]
fn background_thread_does_not_outlive_the_instance() {
    let host = FakeHost::default();
    let plugin = instance(&host, &[]);
    // The background thread holds the authenticator: once the instance is dropped nothing may.
    let authenticator = std::sync::Arc::downgrade(plugin.authenticator());
    assert!(std::sync::Arc::weak_count(plugin.authenticator()) == 1);
    assert!(std::sync::Arc::strong_count(plugin.authenticator()) >= 2, "worker holds a reference");
    drop(plugin);
    assert!(authenticator.upgrade().is_none(), "a thread still holds the authenticator");
}

/// A loopback introspection endpoint answering every request with `body` after `delay`, each
/// request on its own thread (as a real server overlaps them).
fn slow_introspection_stub(body: String, delay: Duration) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/introspect", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                std::thread::sleep(delay);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            });
        }
    });
    url
}

/// An instance introspecting against a stub that calls every token active with
/// `mqtt:write:a/#` for ten minutes, answering after `delay`.
fn slowly_introspecting_instance<'h>(
    host: &'h FakeHost,
    delay: Duration,
    extra: &[(&str, &str)],
) -> Instance<&'h FakeHost> {
    let active = json!({"active": true, "scope": "mqtt:write:a/#", "exp": now() + 600}).to_string();
    let url = slow_introspection_stub(active, delay);
    let mut pairs = vec![
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "b"),
        ("oauth_client_secret", "s"),
    ];
    pairs.extend_from_slice(extra);
    instance(host, &pairs)
}

/// An instance introspecting against a stub that calls every token active with
/// `mqtt:write:a/#` for ten minutes.
fn introspecting_instance(host: &FakeHost) -> Instance<&FakeHost> {
    slowly_introspecting_instance(host, Duration::ZERO, &[])
}

#[test]
fn cold_logins_beyond_the_pass_budget_are_postponed_and_their_reconnects_answered_from_cache() {
    let host = FakeHost::default();
    let plugin = slowly_introspecting_instance(
        &host,
        Duration::from_millis(300),
        &[("oauth_login_wait_budget_ms", "500")],
    );
    let metrics = || plugin.authenticator().metrics().snapshot();
    plugin.on_tick();
    // The first waits 300 ms; the second gets the 200 ms left and is cut short; the third
    // finds the budget spent. Both are refused now and checked in the background.
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"token-1"))).decision, AuthDecision::Accept);
    assert_eq!(plugin.login(&login(2, "dev2", Some(b"token-2"))).decision, AuthDecision::Deny);
    assert_eq!(plugin.login(&login(3, "dev3", Some(b"token-3"))).decision, AuthDecision::Deny);
    assert_eq!((metrics().connects_postponed, metrics().connects_denied), (2, 0));
    assert_eq!(plugin.acl_check(2, Some("dev2"), Access::Write, "a/x"), AclDecision::Defer);
    // Reconnecting while the check runs waits for nothing.
    plugin.on_tick();
    let calls = metrics().upstream_calls;
    assert_eq!(plugin.login(&login(4, "dev3", Some(b"token-3"))).decision, AuthDecision::Deny);
    assert_eq!(metrics().upstream_calls, calls, "a second call for a token being checked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugin.authenticator().cached_entries() < 3 || plugin.reports_waiting() {
        assert!(Instant::now() < deadline, "background checks did not finish");
        plugin.on_tick();
        std::thread::sleep(Duration::from_millis(10));
    }
    plugin.on_tick();
    let calls = metrics().upstream_calls;
    for (address, client_id, token) in [(5, "dev2", b"token-2"), (6, "dev3", b"token-3")] {
        assert_eq!(
            plugin.login(&login(address, client_id, Some(token))).decision,
            AuthDecision::Accept
        );
        assert_eq!(
            plugin.acl_check(address, Some(client_id), Access::Write, "a/x"),
            AclDecision::Allow
        );
    }
    assert_eq!(metrics().upstream_calls, calls, "reconnects answered from the cache");
}

/// An instance whose broker thread may not wait for the authorization server at all.
fn never_waiting_instance(host: &FakeHost) -> Instance<&FakeHost> {
    slowly_introspecting_instance(host, Duration::ZERO, &[("oauth_login_wait_budget_ms", "0")])
}

#[test]
fn a_zero_budget_checks_every_cold_login_in_the_background() {
    let host = FakeHost::default();
    let plugin = never_waiting_instance(&host);
    plugin.on_tick();
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"token-1"))).decision, AuthDecision::Deny);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_postponed, 1);
    // JWTs with the keys at hand need no server: verified in line whatever the budget.
    let token = jwt("mqtt:write:b/#", now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(2, "dev2", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugin.login(&login(3, "dev1", Some(b"token-1"))).decision != AuthDecision::Accept {
        assert!(Instant::now() < deadline, "the background check never reached the cache");
        plugin.on_tick();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn enhanced_auth_connect_is_postponed_but_a_reauthentication_waits_in_line() {
    let host = FakeHost::default();
    let plugin = never_waiting_instance(&host);
    plugin.on_tick();
    let connect = login(1, "dev1", None);
    let first = plugin.extended_auth(&connect, Some("OAUTHBEARER"), b"token-1");
    assert_eq!(first.decision, AuthDecision::Deny);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_postponed, 1);
    // Connected with a JWT (verified locally), the client re-authenticates with a cold token.
    let jwt = jwt("mqtt:write:b/#", now() + 600, json!({}));
    let outcome = plugin.extended_auth(&connect, Some("OAUTHBEARER"), jwt.as_bytes());
    assert_eq!(outcome.decision, AuthDecision::Accept);
    let reauth = plugin.extended_auth(&connect, Some("OAUTHBEARER"), b"token-2");
    assert_eq!(reauth.decision, AuthDecision::Accept);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Allow);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_postponed, 1);
}

#[test]
fn without_ticks_every_login_waits_in_line() {
    // Mosquitto 2.0 before 2.0.15 sends no TICK with per_listener_settings: passes cannot be
    // told apart, so nothing is postponed.
    let host = FakeHost::default();
    let plugin = never_waiting_instance(&host);
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"token-1"))).decision, AuthDecision::Accept);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_postponed, 0);
}

#[test]
fn delayed_login_is_validated_off_thread_and_completed_on_tick() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let plugin = introspecting_instance(&host);
    let outcome = plugin.login(&login(1, "dev1", Some(b"opaque-token")));
    assert_eq!(outcome.decision, AuthDecision::Delayed);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Defer);
    let started = Instant::now();
    while host.completed.borrow().is_empty() && started.elapsed() < Duration::from_secs(10) {
        plugin.tick(Instant::now());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*host.completed.borrow(), [("dev1".to_owned(), AuthDecision::Accept)]);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Allow);
    // Now cached: answered at once.
    assert_eq!(
        plugin.login(&login(2, "dev2", Some(b"opaque-token"))).decision,
        AuthDecision::Accept
    );
    // JWTs are verified locally, at once.
    let token = jwt("mqtt:write:b/#", now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(3, "dev3", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
}

#[test]
fn tokens_checked_against_a_key_file_never_start_a_thread() {
    for delayed in [false, true] {
        let host = FakeHost { delayed, ..FakeHost::default() };
        let plugin = instance(&host, &[("oauth_revalidate_interval", "1")]);
        let token = jwt("mqtt:write:a/#", now() + 600, json!({}));
        assert_eq!(
            plugin.login(&login(1, "dev1", Some(token.as_bytes()))).decision,
            AuthDecision::Accept
        );
        // A revalidation round would be due: there is nothing it could learn.
        plugin.tick(Instant::now() + Duration::from_secs(5));
        plugin.on_tick();
        assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/b"), AclDecision::Allow);
        assert_eq!(plugin.background_threads_started(), 0, "delayed logins: {delayed}");
    }
}

#[test]
fn a_background_answer_is_applied_by_the_next_tick_however_soon() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let plugin = introspecting_instance(&host);
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"opaque"))).decision, AuthDecision::Delayed);
    // Ticks come back to back, as under load: most skip their housekeeping, but none may
    // leave a waiting answer behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while host.completed.borrow().is_empty() {
        let waiting = plugin.reports_waiting();
        plugin.on_tick();
        assert!(!waiting || !host.completed.borrow().is_empty(), "a tick left the answer waiting");
        assert!(Instant::now() < deadline, "no answer from the login thread");
    }
    assert_eq!(*host.completed.borrow(), [("dev1".to_owned(), AuthDecision::Accept)]);
    assert!(!plugin.reports_waiting());
}

#[test]
fn login_threads_start_with_delayed_logins_and_end_when_idle() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let plugin = introspecting_instance(&host);
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + IDLE_EXIT + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            plugin.tick(Instant::now());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    assert_eq!(plugin.background_threads_started(), 0, "no JWKS to prefetch");
    for (address, client_id) in [(1, "dev1"), (2, "dev2"), (3, "dev3")] {
        let token = format!("opaque-token-{client_id}");
        assert_eq!(
            plugin.login(&login(address, client_id, Some(token.as_bytes()))).decision,
            AuthDecision::Delayed
        );
    }
    assert!((1..=3).contains(&plugin.background_threads()), "login threads started");
    wait_for("three logins are completed", &|| host.completed.borrow().len() == 3);
    wait_for("the idle login threads have ended", &|| plugin.background_threads() == 0);
    // And start again for the next delayed login.
    plugin.login(&login(4, "dev4", Some(b"opaque-token-dev4")));
    wait_for("the fourth login is completed", &|| host.completed.borrow().len() == 4);
    assert!(host.completed.borrow().iter().all(|(_, decision)| *decision == AuthDecision::Accept));
}

#[test]
fn stale_delayed_answer_never_reaches_a_newer_connection_of_the_same_id() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let jwks = keys("jwks-1.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/introspect");
    let config = PluginConfig::from_pairs([
        ("oauth_jwks_file", jwks.to_str().unwrap()),
        ("oauth_introspection_url", url.as_str()),
        ("oauth_client_id", "b"),
        ("oauth_client_secret", "s"),
    ])
    .unwrap();
    let plugin = Instance::new(&host, config, 1).unwrap();
    // An opaque token needs the (unreachable) server: delayed.
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"opaque-1"))).decision, AuthDecision::Delayed);
    // The same id connects again, answered at once (a JWT, verified locally).
    let token = jwt("mqtt:write:#", now() + 600, json!({}));
    assert_eq!(
        plugin.login(&login(2, "dev1", Some(token.as_bytes()))).decision,
        AuthDecision::Accept
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        plugin.tick(Instant::now());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        host.completed.borrow().is_empty(),
        "stale answer delivered: {:?}",
        host.completed.borrow()
    );
}

#[test]
fn login_recheck_of_a_connected_client_is_answered_from_its_session() {
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let plugin = introspecting_instance(&host);
    let started = Instant::now();
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"opaque"))).decision, AuthDecision::Delayed);
    while host.completed.borrow().is_empty() && started.elapsed() < Duration::from_secs(10) {
        plugin.tick(Instant::now());
        std::thread::sleep(Duration::from_millis(10));
    }
    plugin.reload();
    // Mosquitto 2.1 re-checks every client after a reload: no delay, no upstream call.
    let calls = plugin.authenticator().metrics().snapshot().upstream_calls;
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"opaque"))).decision, AuthDecision::Accept);
    assert_eq!(plugin.authenticator().metrics().snapshot().upstream_calls, calls);
    assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "a/x"), AclDecision::Allow);
    // A different token on that client is a real login again.
    assert_eq!(plugin.login(&login(1, "dev1", Some(b"other"))).decision, AuthDecision::Delayed);
}

#[test]
fn without_a_token_username_password_file_users_never_log_in_with_a_token() {
    let host = FakeHost::default();
    let passwd = std::env::temp_dir().join(format!("oauth-passwd-{}", std::process::id()));
    std::fs::write(&passwd, "human:$7$101$salt$hash\n").unwrap();
    let plugin = instance(&host, &[]).with_local_users(LocalUsers::load(vec![passwd.clone()]));
    let token = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    let as_operator = Login { username: Some("human"), ..login(1, "dev1", Some(token.as_bytes())) };
    // The operator's login: left to the password file, never validated as a token.
    assert_eq!(plugin.login(&as_operator).decision, AuthDecision::Defer);
    assert_eq!(plugin.authenticator().metrics().snapshot().cache_misses, 0);
    assert_eq!(
        plugin.extended_auth(&as_operator, Some("OAUTHBEARER"), token.as_bytes()).decision,
        AuthDecision::Deny
    );
    let device = Login { username: Some("device"), ..as_operator };
    assert_eq!(plugin.login(&device).decision, AuthDecision::Accept);
    // Re-read on reload: a user added to the file is theirs from then on.
    std::fs::write(&passwd, "human:$7$101$salt$hash\ndevice:$7$101$salt$hash\n").unwrap();
    plugin.reload();
    let again = Login { address: 2, ..device };
    assert_eq!(plugin.login(&again).decision, AuthDecision::Defer);
    std::fs::remove_file(passwd).unwrap();
}

/// Runs ticks until the fake host has been handed `count` completed delayed logins.
fn tick_until_completed(plugin: &Instance<&FakeHost>, host: &FakeHost, count: usize) {
    let started = Instant::now();
    while host.completed.borrow().len() < count && started.elapsed() < Duration::from_secs(10) {
        plugin.tick(Instant::now());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_certificate_bound_token_is_accepted_only_with_its_certificate_and_never_deferred() {
    use oauth_core::CertificateThumbprint;
    let mine = CertificateThumbprint::of_der(b"device-1 certificate");
    let theirs = CertificateThumbprint::of_der(b"device-2 certificate");
    let bound = jwt(DEVICE_SCOPES, now() + 600, json!({"cnf": {"x5t#S256": mine.to_string()}}));
    let bearer = jwt(DEVICE_SCOPES, now() + 600, json!({}));
    // (mode, token, presented certificate, decision)
    let cases = [
        ("when-present", &bound, Some(mine), AuthDecision::Accept),
        ("when-present", &bound, Some(theirs), AuthDecision::Deny),
        ("when-present", &bound, None, AuthDecision::Deny),
        ("when-present", &bearer, None, AuthDecision::Accept),
        ("required", &bearer, Some(mine), AuthDecision::Deny),
        ("required", &bound, Some(mine), AuthDecision::Accept),
        ("off", &bound, None, AuthDecision::Accept),
    ];
    for (mode, token, certificate, decision) in cases {
        let host = FakeHost::default();
        let plugin = instance(&host, &[("oauth_require_certificate_binding", mode)]);
        assert_eq!(plugin.needs_certificates(), mode != "off");
        let outcome =
            plugin.login(&Login { certificate, ..login(1, "dev1", Some(token.as_bytes())) });
        assert_eq!(outcome.decision, decision, "{mode} {certificate:?}");
        let expected =
            if decision == AuthDecision::Accept { AclDecision::Allow } else { AclDecision::Defer };
        assert_eq!(plugin.acl_check(1, Some("dev1"), Access::Write, "devices/dev1/t"), expected);
    }
}

#[test]
fn a_delayed_login_is_held_to_the_certificate_presented_at_connect() {
    use oauth_core::CertificateThumbprint;
    let mine = CertificateThumbprint::of_der(b"device-1 certificate");
    let theirs = CertificateThumbprint::of_der(b"device-2 certificate");
    let host = FakeHost { delayed: true, ..FakeHost::default() };
    let active = json!({
        "active": true, "scope": "mqtt:write:a/#", "exp": now() + 600,
        "cnf": {"x5t#S256": mine.to_string()}
    });
    let url = slow_introspection_stub(active.to_string(), Duration::ZERO);
    let plugin = instance(
        &host,
        &[
            ("oauth_introspection_url", url.as_str()),
            ("oauth_client_id", "b"),
            ("oauth_client_secret", "s"),
        ],
    );
    let copied = Login { certificate: Some(theirs), ..login(1, "thief", Some(b"opaque-token")) };
    assert_eq!(plugin.login(&copied).decision, AuthDecision::Delayed);
    tick_until_completed(&plugin, &host, 1);
    assert_eq!(*host.completed.borrow(), [("thief".to_owned(), AuthDecision::Deny)]);
    assert_eq!(plugin.acl_check(1, Some("thief"), Access::Write, "a/x"), AclDecision::Defer);
    // The same token, now cached, with its certificate; and without any.
    let owner = Login { certificate: Some(mine), ..login(2, "dev1", Some(b"opaque-token")) };
    assert_eq!(plugin.login(&owner).decision, AuthDecision::Accept);
    assert_eq!(plugin.login(&login(3, "dev3", Some(b"opaque-token"))).decision, AuthDecision::Deny);
    assert_eq!(plugin.authenticator().metrics().snapshot().connects_certificate_mismatch, 2);
}
