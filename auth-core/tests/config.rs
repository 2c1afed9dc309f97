//! Configuration: defaults, aliases, and the exact message of every error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use oauth_core::config::{ClientAuth, KeySource, Mode};
use oauth_core::{Config, ConfigError};

const INTROSPECTION: [(&str, &str); 3] = [
    (
        "oauth_introspection_url",
        "https://am.example.com/am/oauth2/realms/root/realms/edge/introspect",
    ),
    ("oauth_client_id", "mqtt-broker"),
    ("oauth_client_secret", "secret"),
];

fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_pairs(pairs.iter().copied())
}

fn error(pairs: &[(&str, &str)]) -> String {
    parse(pairs).expect_err("configuration should be refused").to_string()
}

fn with_introspection(extra: &[(&str, &str)]) -> Vec<(&'static str, &'static str)> {
    let mut pairs = INTROSPECTION.to_vec();
    for (k, v) in extra {
        pairs.push((k, v));
    }
    pairs.into_iter().map(|(k, v)| (leak(k), leak(v))).collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = parse(&INTROSPECTION).unwrap();
    assert_eq!(config.mode, Mode::Auto);
    assert_eq!(config.introspection.as_ref().unwrap().client_auth, ClientAuth::Basic);
    assert_eq!(config.leeway, Duration::from_secs(30));
    assert_eq!(config.scope_prefix, "mqtt:");
    assert_eq!(config.cache.ttl, Duration::from_secs(300));
    assert_eq!(config.cache.negative_ttl, Duration::from_secs(10));
    assert_eq!(config.cache.max_entries, 100_000);
    assert_eq!(config.http_timeout, Duration::from_millis(2000));
    assert_eq!(config.keys, None);
    assert!(config.required_scopes.is_empty() && config.audiences.is_empty());
    assert_eq!(config.algorithms, oauth_core::config::DEFAULT_ALGORITHMS);
    assert!(config.disconnect_on_expiry);
    assert_eq!(config.revalidate_interval, Duration::from_secs(60));
    assert_eq!((config.revalidate_max_rps, config.revalidate_concurrency), (100, 4));
    assert_eq!(config.certificate_binding, oauth_core::CertificateBinding::WhenPresent);
}

#[test]
fn gomozzie_options_work_unchanged() {
    let config = parse(&[
        ("openam_endpoint", "https://am.example.com/openam/oauth2/introspect?realm=/edge"),
        ("openam_client_id", "mqtt_oidc_client"),
        ("openam_client_secret", "password"),
    ])
    .unwrap();
    let introspection = config.introspection.unwrap();
    assert_eq!(introspection.url, "https://am.example.com/openam/oauth2/introspect?realm=/edge");
    assert_eq!(introspection.client_id, "mqtt_oidc_client");
    assert_eq!(introspection.client_secret.expose(), "password");
}

#[test]
fn options_of_other_plugins_are_ignored() {
    let mut pairs = INTROSPECTION.to_vec();
    pairs.extend([("password_file", "/etc/x"), ("dynsec_config", "y"), ("acl_file", "z")]);
    assert!(parse(&pairs).is_ok());
}

#[test]
fn unknown_own_option_is_refused_with_a_suggestion() {
    assert_eq!(
        error(&with_introspection(&[("oauth_cache_tll", "5")])),
        "unknown option oauth_cache_tll (did you mean oauth_cache_ttl?)"
    );
    assert_eq!(
        error(&with_introspection(&[("oauth_frobnicate", "1")])),
        "unknown option oauth_frobnicate"
    );
    assert_eq!(error(&with_introspection(&[("openam_realm", "x")])), "unknown option openam_realm");
}

#[test]
fn bad_values_name_the_option_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "oauth_mode",
            "magic",
            "option oauth_mode: expected auto, introspect or jwt, got \"magic\"",
        ),
        (
            "oauth_client_auth",
            "jwt",
            "option oauth_client_auth: expected basic or post, got \"jwt\"",
        ),
        (
            "oauth_leeway",
            "-1",
            "option oauth_leeway: expected a whole number from 0 to 3600, got \"-1\"",
        ),
        (
            "oauth_leeway",
            "7200",
            "option oauth_leeway: expected a whole number from 0 to 3600, got \"7200\"",
        ),
        (
            "oauth_cache_ttl",
            "5m",
            "option oauth_cache_ttl: expected a whole number from 0 to 86400, got \"5m\"",
        ),
        (
            "oauth_cache_max_entries",
            "0",
            "option oauth_cache_max_entries: expected a whole number from 1 to 100000000, got \"0\"",
        ),
        (
            "oauth_http_timeout_ms",
            "0",
            "option oauth_http_timeout_ms: expected a whole number from 1 to 60000, got \"0\"",
        ),
        (
            "oauth_revalidate_max_rps",
            "0",
            "option oauth_revalidate_max_rps: expected a whole number from 1 to 100000, got \"0\"",
        ),
        (
            "oauth_revalidate_concurrency",
            "65",
            "option oauth_revalidate_concurrency: expected a whole number from 1 to 64, got \"65\"",
        ),
        (
            "oauth_algorithms",
            "HS256",
            "option oauth_algorithms: HS256 is symmetric; only asymmetric algorithms are accepted",
        ),
        (
            "oauth_algorithms",
            "none",
            "option oauth_algorithms: \"none\" would accept unsigned tokens",
        ),
        (
            "oauth_algorithms",
            "RS256,XX1",
            "option oauth_algorithms: unknown algorithm \"XX1\"; expected names like RS256, PS256, ES256, EdDSA",
        ),
        (
            "oauth_scope_prefix",
            "a b",
            "option oauth_scope_prefix: must be a non-empty word without spaces",
        ),
        ("oauth_token_username", "", "option oauth_token_username: must not be empty"),
        (
            "oauth_jwks_url",
            "ftp://x/jwks",
            "option oauth_jwks_url: must be an http:// or https:// URL",
        ),
        (
            "oauth_issuer",
            "not a url",
            "option oauth_issuer: \"not a url\" is not a URL: relative URL without a base",
        ),
    ];
    for (key, value, expected) in cases {
        assert_eq!(error(&with_introspection(&[(key, value)])), *expected, "{key} {value}");
    }
}

#[test]
fn urls_with_embedded_credentials_are_refused() {
    assert_eq!(
        error(&[
            ("oauth_introspection_url", "https://u:p@am.example.com/introspect"),
            ("oauth_client_id", "c"),
            ("oauth_client_secret", "s")
        ]),
        "option oauth_introspection_url: must not carry credentials; use oauth_client_id and oauth_client_secret"
    );
}

#[test]
fn missing_combinations_are_refused() {
    assert_eq!(
        error(&[]),
        "option oauth_introspection_url is required: set an introspection endpoint or JWT keys (oauth_jwks_url, oauth_jwks_file, oauth_issuer)"
    );
    assert_eq!(
        error(&[
            ("oauth_introspection_url", "https://am/introspect"),
            ("oauth_client_secret", "s")
        ]),
        "option oauth_client_id is required: the introspection endpoint needs our client credentials"
    );
    assert_eq!(
        error(&[("oauth_introspection_url", "https://am/introspect"), ("oauth_client_id", "c")]),
        "option oauth_client_secret is required: the introspection endpoint needs our client credentials (or use oauth_client_secret_file)"
    );
    assert_eq!(
        error(&[
            ("oauth_mode", "jwt"),
            ("oauth_introspection_url", "https://am/i"),
            ("oauth_client_id", "c"),
            ("oauth_client_secret", "s")
        ]),
        "option oauth_jwks_url is required: oauth_mode jwt needs keys: oauth_jwks_url, oauth_jwks_file or oauth_issuer (discovery)"
    );
    assert_eq!(
        error(&[("oauth_mode", "introspect"), ("oauth_jwks_url", "https://am/jwks")]),
        "option oauth_introspection_url is required: oauth_mode introspect needs the introspection endpoint"
    );
    assert_eq!(
        error(&[("oauth_jwks_url", "https://am/jwks"), ("oauth_jwt_revocation", "introspect")]),
        "option oauth_introspection_url is required: oauth_jwt_revocation introspect needs the introspection endpoint"
    );
    assert_eq!(
        error(&[("oauth_jwks_url", "https://am/jwks"), ("oauth_jwt_revocation", "always")]),
        "option oauth_jwt_revocation: expected keys or introspect, got \"always\""
    );
    assert_eq!(
        error(&with_introspection(&[("oauth_require_certificate_binding", "yes")])),
        "option oauth_require_certificate_binding: expected off, when-present or required, got \"yes\""
    );
}

#[test]
fn conflicting_options_are_refused() {
    assert_eq!(
        error(&with_introspection(&[
            ("oauth_jwks_url", "https://a/jwks"),
            ("oauth_jwks_file", "/etc/jwks.json")
        ])),
        "options oauth_jwks_url and oauth_jwks_file cannot be used together"
    );
    assert_eq!(
        error(&with_introspection(&[("oauth_client_secret_file", "/etc/secret")])),
        "options oauth_client_secret and oauth_client_secret_file cannot be used together"
    );
}

#[test]
fn the_same_setting_twice_is_refused_even_through_an_alias() {
    assert_eq!(
        error(&with_introspection(&[("openam_endpoint", "https://other/introspect")])),
        "option oauth_introspection_url is given more than once (under its name or an alias)"
    );
    assert_eq!(
        error(&with_introspection(&[("oauth_leeway", "1"), ("oauth_leeway", "2")])),
        "option oauth_leeway is given more than once (under its name or an alias)"
    );
}

#[test]
fn client_secret_is_read_from_a_file() {
    let dir = std::env::temp_dir().join(format!("oauth-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let config = parse(&[
        ("oauth_introspection_url", "https://am/introspect"),
        ("oauth_client_id", "c"),
        ("oauth_client_secret_file", path.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(config.introspection.unwrap().client_secret.expose(), "from-file");

    let missing = dir.join("absent");
    let message = error(&[
        ("oauth_introspection_url", "https://am/introspect"),
        ("oauth_client_id", "c"),
        ("oauth_client_secret_file", missing.to_str().unwrap()),
    ]);
    assert!(
        message.starts_with(&format!(
            "option oauth_client_secret_file: cannot read {}",
            missing.display()
        )),
        "{message}"
    );
}

#[test]
fn issuer_alone_means_keys_from_discovery() {
    let config = parse(&[("oauth_issuer", "https://am.example.com/am/oauth2/")]).unwrap();
    assert_eq!(config.issuer.as_deref(), Some("https://am.example.com/am/oauth2"));
    assert_eq!(config.keys, Some(KeySource::Discovery("https://am.example.com/am/oauth2".into())));
}

#[test]
fn lists_accept_commas_and_spaces() {
    let config = parse(&with_introspection(&[
        ("oauth_audience", "a, b c"),
        ("oauth_required_scopes", "mqtt:connect device"),
        ("oauth_algorithms", "RS256 ES256,RS256"),
    ]))
    .unwrap();
    assert_eq!(config.audiences, ["a", "b", "c"]);
    assert_eq!(config.required_scopes, ["mqtt:connect", "device"]);
    assert_eq!(config.algorithms, [jsonwebtoken::Algorithm::RS256, jsonwebtoken::Algorithm::ES256]);
}

#[test]
fn token_username_or_the_local_users_decide_which_logins_carry_tokens() {
    let local = |name: &str| name == "human";
    let unmarked = parse(&INTROSPECTION).unwrap();
    assert!(unmarked.is_token_login(None, local));
    assert!(unmarked.is_token_login(Some("device"), local));
    assert!(!unmarked.is_token_login(Some("human"), local), "a local user's login is theirs");
    let marked = parse(&with_introspection(&[("oauth_token_username", "oauth2")])).unwrap();
    assert!(marked.is_token_login(Some("oauth2"), local));
    assert!(!marked.is_token_login(Some("human"), local));
    assert!(!marked.is_token_login(Some("device"), local));
    assert!(!marked.is_token_login(None, local));
}

#[test]
fn bad_files_are_refused_when_the_authenticator_starts() {
    let dir = std::env::temp_dir().join(format!("oauth-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, "not json").unwrap();
    let start = |pairs: &[(&str, &str)]| {
        oauth_core::Authenticator::new(parse(pairs).unwrap()).expect_err("should fail").to_string()
    };
    let message = start(&[("oauth_jwks_file", garbage.to_str().unwrap())]);
    assert!(
        message.starts_with("option oauth_jwks_file: ") && message.contains("is not a JSON object"),
        "{message}"
    );
    let empty = dir.join("empty.json");
    std::fs::write(&empty, r#"{"keys": []}"#).unwrap();
    assert_eq!(
        start(&[("oauth_jwks_file", empty.to_str().unwrap())]),
        format!("option oauth_jwks_file: {} holds no usable public key", empty.display())
    );
    let message = start(&with_introspection(&[("oauth_ca_file", leak(garbage.to_str().unwrap()))]));
    assert!(message.starts_with("option oauth_ca_file: "), "{message}");
}

#[test]
fn error_reports_its_key() {
    let err = parse(&with_introspection(&[("oauth_leeway", "x")])).unwrap_err();
    assert_eq!(err.key(), "oauth_leeway");
    assert_eq!(parse(&[]).unwrap_err().key(), "oauth_introspection_url");
}

#[test]
fn start_up_warning_names_the_placeholders_no_claim_binds() {
    // (options, parts the warning names, parts it must not name)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
    let cases: [Case<'_>; 4] = [
        (&[], &["%c stands for any client id", "%u stands for any username"], &[]),
        (
            &[("oauth_token_username", "oauth2")],
            &["%c stands for any client id", "%u stands for the oauth_token_username marker"],
            &["any username"],
        ),
        (&[("oauth_client_id_claim", "sub")], &["%u stands for any username"], &["%c"]),
        (&[("oauth_client_id_claim", "sub"), ("oauth_username_claim", "username")], &[], &[]),
    ];
    for (options, named, not_named) in cases {
        let warning = parse(&with_introspection(options)).unwrap().unbound_identity_warning();
        if named.is_empty() {
            assert_eq!(warning, None, "{options:?}");
            continue;
        }
        let warning = warning.unwrap_or_else(|| panic!("{options:?}: no warning"));
        for part in named {
            assert!(warning.contains(part), "{options:?}: {warning}");
        }
        for part in not_named {
            assert!(!warning.contains(part), "{options:?}: {warning}");
        }
    }
}

/// Two issuer profiles, `edge` (introspection) and `cloud` (JWKS URL), and shared options.
const TWO_ISSUERS: [(&str, &str); 9] = [
    ("oauth_audience", "urn:mqtt:broker"),
    ("oauth_issuers.edge.issuer", "https://am.example.com/oauth2/"),
    ("oauth_issuers.edge.introspection_url", "https://am.example.com/oauth2/introspect"),
    ("oauth_issuers.edge.client_id", "mqtt-broker"),
    ("oauth_issuers.edge.client_secret", "secret"),
    ("oauth_issuers.cloud.issuer", "https://idp.example.com/realms/iot"),
    ("oauth_issuers.cloud.jwks_url", "https://idp.example.com/realms/iot/certs"),
    ("oauth_issuers.cloud.scope_prefix", "iot:"),
    ("oauth_issuers.cloud.client_id_claim", "sub"),
];

#[test]
fn issuer_profiles_take_their_own_server_and_inherit_the_shared_claim_options() {
    let config = parse(&TWO_ISSUERS).unwrap();
    assert!(!config.validates_tokens(), "no default profile: no endpoint outside the profiles");
    let profiles: Vec<_> = config.profiles().collect();
    assert_eq!(profiles.len(), 2);
    let (edge, cloud) = (profiles[0], profiles[1]);
    assert_eq!(edge.0, Some("edge"));
    assert_eq!(edge.1.issuer.as_deref(), Some("https://am.example.com/oauth2"));
    assert_eq!(edge.1.introspection.as_ref().unwrap().client_id, "mqtt-broker");
    assert_eq!((edge.1.scope_prefix.as_str(), edge.1.client_id_claim.as_deref()), ("mqtt:", None));
    assert_eq!(cloud.0, Some("cloud"));
    assert!(cloud.1.introspection.is_none());
    assert_eq!(
        cloud.1.keys,
        Some(KeySource::Url("https://idp.example.com/realms/iot/certs".into()))
    );
    assert_eq!(
        (cloud.1.scope_prefix.as_str(), cloud.1.client_id_claim.as_deref()),
        ("iot:", Some("sub"))
    );
    for (_, profile) in &profiles {
        assert_eq!(profile.audiences, ["urn:mqtt:broker"]);
    }

    // Endpoints outside the profiles make a default profile, tried first; named profiles do not
    // inherit them.
    let mut pairs = INTROSPECTION.to_vec();
    pairs.extend_from_slice(&TWO_ISSUERS);
    let config = parse(&pairs).unwrap();
    let names: Vec<_> = config.profiles().map(|(name, _)| name).collect();
    assert_eq!(names, [None, Some("edge"), Some("cloud")]);
    assert!(config.profiles().nth(2).unwrap().1.introspection.is_none());
}

#[test]
fn issuer_profile_errors_name_the_profile_option() {
    let with = |extra: &[(&str, &str)]| {
        let mut pairs = TWO_ISSUERS.to_vec();
        pairs.extend_from_slice(extra);
        error(&pairs)
    };
    assert_eq!(
        with(&[("oauth_issuers.cloud.cache_ttl", "5")]),
        "option oauth_issuers.cloud.cache_ttl: is not an issuer profile option; a profile takes issuer, jwks_url, jwks_file, introspection_url, client_id, client_secret, client_secret_file, client_auth, mode, audience, algorithms, leeway, scope_prefix, required_scopes, client_id_claim, username_claim, jwt_revocation"
    );
    assert_eq!(
        with(&[("oauth_issuers.spare.jwks_url", "https://x/jwks")]),
        "option oauth_issuers.spare.issuer is required: JWTs are routed to a profile by their iss"
    );
    assert_eq!(
        with(&[
            ("oauth_issuers.copy.issuer", "https://am.example.com/oauth2"),
            ("oauth_issuers.copy.jwks_url", "https://x/jwks")
        ]),
        "option oauth_issuers.copy.issuer: is the issuer of profile \"edge\" as well; JWTs are routed by issuer, so each profile needs its own"
    );
    assert_eq!(
        with(&[
            ("oauth_issuers.spare.issuer", "https://x"),
            ("oauth_issuers.spare.mode", "introspect")
        ]),
        "option oauth_issuers.spare.introspection_url is required: oauth_issuers.spare.mode introspect needs the introspection endpoint"
    );
    assert_eq!(
        with(&[("oauth_issuers.default.issuer", "https://x")]),
        "option oauth_issuers.default.issuer: a profile name is letters, digits, - and _ (it names $SYS topics), and not \"default\""
    );
    assert_eq!(
        with(&[("oauth_issuers.a/b.issuer", "https://x")]),
        "option oauth_issuers.a/b.issuer: a profile name is letters, digits, - and _ (it names $SYS topics), and not \"default\""
    );
    assert_eq!(
        with(&[("oauth_issuers.edge", "https://x")]),
        "option oauth_issuers.edge: expected oauth_issuers.<name>.<option> <value>"
    );
    assert_eq!(
        with(&[("oauth_issuers.cloud.scope_prefix", "again")]),
        "option oauth_issuers.cloud.scope_prefix is given more than once (under its name or an alias)"
    );
    assert_eq!(
        with(&[
            ("oauth_issuers.spare.issuer", "https://x"),
            ("oauth_issuers.spare.scope_prefix", "two words")
        ]),
        "option oauth_issuers.spare.scope_prefix: must be a non-empty word without spaces"
    );
}
