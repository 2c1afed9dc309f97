//! Certificate devices, token devices and password users on one Mosquitto (issue #20, item 1),
//! with real TLS client certificates made for the test and Mosquitto's own command-line clients
//! as the TLS clients. What arrives is watched by a token client on a plain listener.
//!
//! Two layouts work:
//! - (a) `per_listener_settings true`: certificate devices on a TLS listener with
//!   `require_certificate true` + `use_identity_as_username true` and an `acl_file`, token
//!   devices and password users on another listener with the plugin. Mosquitto never asks the
//!   plugin on the first listener: a token device connecting there with a certificate becomes
//!   its certificate identity, and its token grants nothing.
//! - (b) one TLS listener with `require_certificate true` and no `use_identity_as_username`: every
//!   client presents a certificate, and the password decides (a token for token devices, a
//!   users-file password for people).
//!
//! On layout (b) tokens may be bound to the device's certificate (item 2, RFC 8705): the test
//! server's `bound-device` gets tokens carrying `cnf.x5t#S256`, and the plugin admits them only
//! with that certificate.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use mosquitto_oauth_e2e::idp::{
    BOUND_DEVICE, BROKER_CLIENT_ID, BROKER_CLIENT_SECRET, Idp, TokenRequest,
};
use mosquitto_oauth_e2e::mosquitto::{Mosquitto, MosquittoConfig, plugin_path};
use mosquitto_oauth_e2e::mqtt::{ConnectOptions, ConnectRefused, MqttClient, Protocol};
use mosquitto_oauth_e2e::scenarios::{QUIET, WAIT};
use mosquitto_oauth_e2e::tls::{
    certificate_thumbprint, client_certificate, make_certificates, publish_over_tls,
    publish_without_certificate,
};

/// Part of the start-up warning about a listener where the plugin is never asked.
const IDENTITY_WARNING: &str = "takes each client's certificate identity as its username";

/// The plugin's lines: introspection at `idp`, token logins only for username `oauth2`.
fn plugin_lines(idp: &Idp) -> String {
    format!(
        "plugin {}\nplugin_opt_oauth_introspection_url {}\nplugin_opt_oauth_client_id {BROKER_CLIENT_ID}\n\
         plugin_opt_oauth_client_secret {BROKER_CLIENT_SECRET}\nplugin_opt_oauth_token_username oauth2\n",
        plugin_path().display(),
        idp.introspection_url(),
    )
}

/// TLS listener lines with the test CA and server certificate in `dir`, client certificates
/// required.
fn tls_lines(port: u16, dir: &Path) -> String {
    format!(
        "listener {port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
         require_certificate true\n",
        dir.display()
    )
}

/// Connects to the plain listener at `port` with MQTT 5.
fn client(port: u16, client_id: &str, username: &str, password: &str) -> MqttClient {
    let options = ConnectOptions::new(client_id).credentials(username, password);
    MqttClient::connect(port, Protocol::V5, options).unwrap()
}

/// A token client reading everything, on the plain listener at `port`.
fn watcher(idp: &Idp, port: u16) -> MqttClient {
    let watcher =
        client(port, "watcher", "oauth2", &idp.opaque_token("device-3", &["mqtt:read:#"]));
    assert_eq!(watcher.subscribe("#", 1), 0x01);
    watcher
}

/// A config dir with the test CA, the server certificate, client certificates `(file name,
/// common name)`, and users-file user `human` (password `human-pass`, `ops/#`): the config, the
/// password file and its ACL file.
fn config_with(certificates: &[(&str, &str)]) -> (MosquittoConfig, PathBuf, PathBuf) {
    let config = MosquittoConfig::new();
    make_certificates(config.dir());
    for (name, cn) in certificates {
        client_certificate(config.dir(), name, cn);
    }
    let passwd = config.password_file(&[("human", "human-pass")]);
    let users_acl = config.write_file("users-acl", "user human\ntopic readwrite ops/#\n");
    (config, passwd, users_acl)
}

#[test]
fn certificate_devices_on_their_own_listener_beside_token_devices_and_password_users() {
    let idp = Idp::start();
    let (config, passwd, users_acl) =
        config_with(&[("cert-device", "tenant1:dev7"), ("token-device", "device-1")]);
    let acl = config.write_file("acl", "pattern readwrite %u/#\n");
    let dir = config.dir().to_path_buf();
    let certificate_port = config.ports().second;
    let mosquitto: Mosquitto = config.start(|ports| {
        format!(
            "per_listener_settings true\n{}use_identity_as_username true\nacl_file {}\n\
             allow_anonymous false\nlistener {} 127.0.0.1\nallow_anonymous false\n\
             password_file {}\nacl_file {}\n{}",
            tls_lines(ports.second, &dir),
            acl.display(),
            ports.main,
            passwd.display(),
            users_acl.display(),
            plugin_lines(&idp),
        )
    });
    let watcher = watcher(&idp, mosquitto.port());
    assert!(!mosquitto.log().contains(IDENTITY_WARNING), "{}", mosquitto.log());

    // The certificate device: its identity is its username, the ACL file its rights.
    assert!(publish_over_tls(certificate_port, &dir, "cert-device", None, "tenant1:dev7/attrs"));
    assert!(publish_over_tls(certificate_port, &dir, "cert-device", None, "tenant2:dev1/attrs"));
    assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), ["tenant1:dev7/attrs"]);

    // A token device with a certificate on that listener becomes its certificate identity:
    // Mosquitto never asks the plugin there, so its token grants nothing.
    let token = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
    let token_login = Some(("oauth2", token.as_str()));
    assert!(publish_over_tls(
        certificate_port,
        &dir,
        "token-device",
        token_login,
        "devices/device-1/t"
    ));
    assert!(publish_over_tls(certificate_port, &dir, "token-device", token_login, "device-1/t"));
    assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), ["device-1/t"]);

    // On the plugin's listener the token decides, and the users file decides for people.
    let device = client(mosquitto.port(), "device-1", "oauth2", &token);
    assert_eq!(device.publish("devices/device-1/t", b"x", 1, false), Some(0x00));
    assert_eq!(device.publish("devices/device-2/t", b"x", 1, false), Some(0x87));
    let human = client(mosquitto.port(), "human", "human", "human-pass");
    assert_eq!(human.publish("ops/note", b"x", 1, false), Some(0x00));
    assert_eq!(human.publish("devices/device-1/t", b"x", 1, false), Some(0x87));
    assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), ["devices/device-1/t", "ops/note"]);
}

#[test]
fn one_listener_requiring_certificates_where_the_password_decides() {
    let idp = Idp::start();
    let (config, passwd, users_acl) =
        config_with(&[("token-device", "device-1"), ("human", "human")]);
    let dir = config.dir().to_path_buf();
    let tls_port = config.ports().second;
    let mosquitto: Mosquitto = config.start(|ports| {
        format!(
            "{}listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n{}",
            tls_lines(ports.second, &dir),
            ports.main,
            passwd.display(),
            users_acl.display(),
            plugin_lines(&idp),
        )
    });
    let watcher = watcher(&idp, mosquitto.port());

    let token = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
    let token_login = Some(("oauth2", token.as_str()));
    assert!(publish_over_tls(tls_port, &dir, "token-device", token_login, "devices/device-1/t"));
    assert!(publish_over_tls(tls_port, &dir, "token-device", token_login, "devices/device-2/t"));
    assert!(publish_over_tls(tls_port, &dir, "human", Some(("human", "human-pass")), "ops/note"));
    assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), ["devices/device-1/t", "ops/note"]);

    // A certificate alone is not a login here, nor is a bad token with a good certificate.
    assert!(!publish_over_tls(tls_port, &dir, "token-device", None, "devices/device-1/t"));
    assert!(!publish_over_tls(
        tls_port,
        &dir,
        "token-device",
        Some(("oauth2", "garbage")),
        "devices/device-1/t"
    ));
    assert!(watcher.expect_nothing(QUIET));
    // Without a client certificate the TLS handshake itself fails.
    let (ok, text) = publish_without_certificate(tls_port, &dir, token_login, "devices/device-1/t");
    assert!(!ok, "accepted without a certificate: {text}");
}

#[test]
fn a_plugin_serving_a_listener_that_takes_certificate_identities_is_warned_about_at_start() {
    let idp = Idp::start();
    let config = MosquittoConfig::new();
    make_certificates(config.dir());
    let dir = config.dir().to_path_buf();
    let mosquitto: Mosquitto = config.start(|ports| {
        format!(
            "listener {} 127.0.0.1\nallow_anonymous false\n{}use_identity_as_username true\n{}",
            ports.main,
            tls_lines(ports.second, &dir),
            plugin_lines(&idp),
        )
    });
    mosquitto.expect_log(
        &format!(
            "oauth: listener {} 127.0.0.1 takes each client's certificate identity as its username",
            mosquitto.ports().second
        ),
        WAIT,
    );
}

/// The scopes of the bound device's tokens.
const BOUND_SCOPES: [&str; 1] = ["mqtt:write:devices/bound-device/#"];

/// A Mosquitto with the plugin (opaque tokens introspected, JWTs verified against the test
/// server's keys, `binding` as `oauth_require_certificate_binding` unless `None`): a plain
/// listener and a TLS one requiring certificates, with client certificates `bound-device` and
/// `other-device` in its config dir.
fn broker_for_bound_tokens(idp: &Idp, binding: Option<&str>) -> (Mosquitto, PathBuf) {
    let (config, _, _) =
        config_with(&[("bound-device", "bound-device"), ("other-device", "device-2")]);
    let dir = config.dir().to_path_buf();
    let binding = binding
        .map(|mode| format!("plugin_opt_oauth_require_certificate_binding {mode}\n"))
        .unwrap_or_default();
    let mosquitto = config.start(|ports| {
        format!(
            "{}listener {} 127.0.0.1\nallow_anonymous false\n{}plugin_opt_oauth_jwks_url {}\n{binding}",
            tls_lines(ports.second, &dir),
            ports.main,
            plugin_lines(idp),
            idp.jwks_url(),
        )
    });
    (mosquitto, dir)
}

/// `bound-device`'s certificate as the test server receives it.
fn bound_device_pem(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("bound-device.pem")).unwrap()
}

#[test]
fn a_certificate_bound_token_is_accepted_only_from_the_device_holding_its_certificate() {
    let idp = Idp::start();
    let (mosquitto, dir) = broker_for_bound_tokens(&idp, None);
    let tls_port = mosquitto.ports().second;
    let watcher = watcher(&idp, mosquitto.port());
    let pem = bound_device_pem(&dir);
    let request = TokenRequest::new(BOUND_DEVICE, &BOUND_SCOPES).presenting(&pem);
    let opaque = idp.token(&request);
    let jwt = idp.token(&request.resource("urn:mqtt:broker"));

    // The device with its certificate: both token kinds work, and only within their grants.
    for (token, topic) in
        [(&opaque, "devices/bound-device/opaque"), (&jwt, "devices/bound-device/jwt")]
    {
        let login = Some(("oauth2", token.as_str()));
        assert!(publish_over_tls(tls_port, &dir, "bound-device", login, topic));
        assert!(publish_over_tls(tls_port, &dir, "bound-device", login, "devices/other/t"));
    }
    assert_eq!(
        watcher.topics_until_quiet(WAIT, QUIET),
        ["devices/bound-device/opaque", "devices/bound-device/jwt"]
    );

    // The same tokens copied to another device: its own valid certificate does not do.
    for token in [&opaque, &jwt] {
        let login = Some(("oauth2", token.as_str()));
        assert!(!publish_over_tls(tls_port, &dir, "other-device", login, "devices/bound-device/t"));
    }
    let bound = certificate_thumbprint(&dir, "bound-device");
    let other = certificate_thumbprint(&dir, "other-device");
    mosquitto.expect_log(
        &format!(
            "client \"other-device\" refused: the token is bound to the certificate {bound}, the connection presented {other}"
        ),
        WAIT,
    );
    // Nor does a connection without a certificate: refused, not left to other mechanisms.
    for token in [&opaque, &jwt] {
        let options = ConnectOptions::new("thief").credentials("oauth2", token);
        let refused = MqttClient::connect(mosquitto.port(), Protocol::V5, options).err();
        assert_eq!(refused, Some(ConnectRefused::Code(0x87)));
    }
    mosquitto.expect_log(
        "client \"thief\" refused: the token is bound to a TLS client certificate (cnf x5t#S256) and the connection presented none",
        WAIT,
    );
    assert!(watcher.expect_nothing(QUIET));

    // Unbound tokens stay bearer tokens, with a certificate or without.
    let bearer = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
    let device = client(mosquitto.port(), "device-1", "oauth2", &bearer);
    assert_eq!(device.publish("devices/device-1/t", b"x", 1, false), Some(0x00));
    let login = Some(("oauth2", bearer.as_str()));
    assert!(publish_over_tls(tls_port, &dir, "other-device", login, "devices/device-1/tls"));
    assert_eq!(
        watcher.topics_until_quiet(WAIT, QUIET),
        ["devices/device-1/t", "devices/device-1/tls"]
    );
}

#[test]
fn required_binding_refuses_bearer_tokens_and_off_ignores_the_binding() {
    let idp = Idp::start();
    let bearer = idp.opaque_token("device-1", &["mqtt:write:devices/device-1/#"]);
    let bearer_login = Some(("oauth2", bearer.as_str()));

    let (mosquitto, dir) = broker_for_bound_tokens(&idp, Some("required"));
    let pem = bound_device_pem(&dir);
    let bound = idp.token(&TokenRequest::new(BOUND_DEVICE, &BOUND_SCOPES).presenting(&pem));
    let bound_login = Some(("oauth2", bound.as_str()));
    let tls_port = mosquitto.ports().second;
    assert!(publish_over_tls(
        tls_port,
        &dir,
        "bound-device",
        bound_login,
        "devices/bound-device/t"
    ));
    assert!(!publish_over_tls(tls_port, &dir, "other-device", bearer_login, "devices/device-1/t"));
    mosquitto.expect_log(
        "client \"other-device\" refused: the token is not bound to a certificate (no cnf x5t#S256) and binding is required",
        WAIT,
    );
    drop(mosquitto);

    let (mosquitto, dir) = broker_for_bound_tokens(&idp, Some("off"));
    let pem = bound_device_pem(&dir);
    let bound = idp.token(&TokenRequest::new(BOUND_DEVICE, &BOUND_SCOPES).presenting(&pem));
    let watcher = watcher(&idp, mosquitto.port());
    let device = client(mosquitto.port(), "anywhere", "oauth2", &bound);
    assert_eq!(device.publish("devices/bound-device/t", b"x", 1, false), Some(0x00));
    assert_eq!(watcher.topics_until_quiet(WAIT, QUIET), ["devices/bound-device/t"]);
}
