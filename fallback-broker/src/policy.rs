//! The broker's decisions, free of the engine: who may connect, and what a connected client may
//! do. Token logins and token clients' ACL checks are the core's session policy
//! ([`oauth_core::policy`]), the same code the Mosquitto plugin runs; this module adds what
//! Mosquitto itself would do with `password_file`, `acl_file` and `allow_anonymous`:
//!
//! 1. A token login (every login, or only those with `auth.token_username`) with a password is
//!    decided by the core's policy: accepted, refused (server unavailable, will not writable), or
//!    left to the next mechanism (token rejected), like the plugin's DEFER.
//! 2. A username and password are checked against the users file.
//! 3. On a listener that requires client certificates, a CONNECT without password is a
//!    certificate login: the certificate's identity gets its `[[users.grants]]` (Mosquitto's
//!    `use_identity_as_username` with an `acl_file`).
//! 4. Elsewhere, a client without username and password is anonymous: refused unless allowed.
//! 5. A will whose topic the client may not write refuses the connection.
//!
//! Nothing here blocks on anything but the core's HTTP calls: the engine glue runs
//! [`Policy::connect`] on a blocking thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use oauth_core::policy::{self, AclVerdict, Denial, LoginAttempt, LoginDecision, TokenClient};
use oauth_core::{Access, AccessToken, Authenticator, Grants, Metrics, SessionGrants, now_epoch};

use crate::config::BrokerConfig;
use crate::passwd::UsersFile;

/// What a client sent in CONNECT that matters for the decision.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRequest<'a> {
    /// Client id (as assigned by the broker when the client sent none).
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Password (binary in MQTT), if any. Never logged.
    pub password: Option<&'a [u8]>,
    /// Will topic, if the client has a will.
    pub will_topic: Option<&'a str>,
    /// The listener required a client certificate (the handshake verified it).
    pub certificate_listener: bool,
    /// The verified certificate's identity (common name or subject, as the listener says);
    /// `None` when it has none.
    pub certificate_identity: Option<&'a str>,
}

/// The answer to a CONNECT.
#[derive(Debug)]
pub enum Verdict {
    /// Connect with these rights.
    Accept(Arc<Principal>),
    /// Refused: the credentials were checked and are not acceptable.
    BadCredentials,
    /// Refused without judging the credentials (authorization server unavailable, anonymous
    /// not allowed, will topic not writable).
    NotAuthorized,
}

/// How a connected client authenticated.
#[derive(Debug)]
pub enum Identity {
    /// With an access token: the core's client record (grants, `exp`, token, revoked mark).
    Token(TokenClient),
    /// As a users-file user.
    User {
        /// The username.
        name: Box<str>,
        /// The configured grants, resolved for this client.
        grants: SessionGrants,
    },
    /// With a client certificate and no password.
    Certificate {
        /// The certificate's identity.
        name: Box<str>,
        /// The configured grants of that identity, resolved for this client.
        grants: SessionGrants,
    },
    /// Without credentials (`allow_anonymous`).
    Anonymous {
        /// The `[anonymous]` grants, resolved for this client.
        grants: SessionGrants,
    },
}

/// A connected client's identity and rights.
#[derive(Debug)]
pub struct Principal {
    client_id: Box<str>,
    identity: Identity,
}

impl Principal {
    /// A principal (also for tests of the engine glue).
    pub fn new(client_id: &str, identity: Identity) -> Self {
        Self { client_id: client_id.into(), identity }
    }

    /// Records that the client's connection ended at `now` (epoch seconds): a token client's
    /// will and queued messages are decided as the core decides for offline clients.
    pub fn left(&self, now: u64) {
        if let Identity::Token(client) = &self.identity {
            client.left(now);
        }
    }

    /// The MQTT client id it connected with.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How it authenticated.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The core's record, for token logins.
    pub fn token_client(&self) -> Option<&TokenClient> {
        match &self.identity {
            Identity::Token(client) => Some(client),
            _ => None,
        }
    }

    /// The bare ACL decision at `now` (epoch seconds), without counting or logging.
    pub fn allows(&self, access: Access, topic: &str, now: u64) -> bool {
        match &self.identity {
            Identity::Token(client) => client.allows(access, topic, now),
            Identity::User { grants, .. }
            | Identity::Certificate { grants, .. }
            | Identity::Anonymous { grants } => grants.allows(access, topic),
        }
    }
}

/// Decides connections and ACL checks. Shared by all listeners.
#[derive(Debug)]
pub struct Policy {
    auth: Arc<Authenticator>,
    users_file: Option<PathBuf>,
    users: RwLock<Arc<UsersFile>>,
    user_grants: HashMap<String, Grants>,
    anonymous: Option<Grants>,
}

impl Policy {
    /// Builds the policy: the core's authenticator (which may read key and secret files) and
    /// the users file. Errors name the option.
    pub fn new(config: &BrokerConfig) -> Result<Self, String> {
        let auth = Authenticator::new(config.auth.clone()).map_err(|e| e.to_string())?;
        let (users_file, users, user_grants) = match &config.users {
            Some(users) => {
                let file = match &users.file {
                    Some(path) => UsersFile::load(path)
                        .map_err(|problem| format!("option users.file: {problem}"))?,
                    None => UsersFile::default(),
                };
                let grants = users
                    .grants
                    .iter()
                    .map(|g| (g.username.clone(), g.grants.to_grants()))
                    .collect();
                (users.file.clone(), file, grants)
            }
            None => (None, UsersFile::default(), HashMap::new()),
        };
        Ok(Self {
            auth: Arc::new(auth),
            users_file,
            users: RwLock::new(Arc::new(users)),
            user_grants,
            anonymous: config.allow_anonymous.then(|| config.anonymous.to_grants()),
        })
    }

    /// The core's authenticator (counters, cache, revalidation).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    fn metrics(&self) -> &Metrics {
        self.auth.metrics()
    }

    fn users(&self) -> Arc<UsersFile> {
        Arc::clone(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Decides a CONNECT. Blocking: may call the authorization server.
    pub fn connect(&self, request: &ConnectRequest<'_>) -> Verdict {
        let client_id = request.client_id;
        let attempt = LoginAttempt {
            client_id,
            username: request.username,
            will_topic: request.will_topic,
            admitted: false,
            exclusive: false,
            // rmqtt 0.24 hands hooks the certificate's names, not its DER: a certificate-bound
            // token cannot be proven here, so it is refused (see `require_certificate_binding`).
            certificate: None,
        };
        let is_local_user = |name: &str| self.users_file.is_some() && self.users().contains(name);
        let token_login = self.auth.config().is_token_login(request.username, is_local_user);
        let decision = match request.password.filter(|p| !p.is_empty()) {
            Some(password) if token_login => {
                let token = AccessToken::new(password);
                let outcome = self.auth.validate(&token);
                policy::decide_token_login(&self.auth, &attempt, token, outcome, now_epoch())
            }
            None if token_login => policy::decide_not_ours(&attempt, "no password", self.metrics()),
            _ => policy::decide_not_ours(&attempt, "not a token login", self.metrics()),
        };
        match decision {
            LoginDecision::Accept(client) => {
                return Verdict::Accept(Arc::new(Principal::new(
                    client_id,
                    Identity::Token(client),
                )));
            }
            LoginDecision::Defer => {}
            LoginDecision::Deny | LoginDecision::DenyAndRevoke => return Verdict::NotAuthorized,
        }
        if request.certificate_listener && request.password.is_none() {
            return self.certificate_login(request);
        }

        match (request.username, request.password) {
            (Some(username), Some(password)) if self.users_file.is_some() => {
                if !self.users().verify(username, password) {
                    log::info!(
                        "client {client_id:?} refused: bad username or password for users-file user {username:?}"
                    );
                    return Verdict::BadCredentials;
                }
                let grants = self.configured_grants(client_id, username);
                let principal =
                    Principal::new(client_id, Identity::User { name: username.into(), grants });
                self.admit(principal, request, format_args!("users-file user {username:?}"))
            }
            (None, None) => match &self.anonymous {
                Some(grants) => {
                    let grants = grants.resolve(client_id, None);
                    self.admit(
                        Principal::new(client_id, Identity::Anonymous { grants }),
                        request,
                        format_args!("anonymous"),
                    )
                }
                None => {
                    log::info!("client {client_id:?} refused: anonymous clients are not allowed");
                    Verdict::NotAuthorized
                }
            },
            _ => {
                log::info!("client {client_id:?} refused: no mechanism accepts its credentials");
                Verdict::BadCredentials
            }
        }
    }

    /// The `[[users.grants]]` of `name` (a users-file user or a certificate identity), resolved
    /// for this client; none when it has no entry.
    fn configured_grants(&self, client_id: &str, name: &str) -> SessionGrants {
        self.user_grants
            .get(name)
            .map(|g| g.resolve(client_id, Some(name)))
            .unwrap_or_else(|| Grants::default().resolve(client_id, None))
    }

    /// A CONNECT without password on a listener that required a certificate: the identity
    /// the handshake verified gets its configured grants (none when it has no entry).
    fn certificate_login(&self, request: &ConnectRequest<'_>) -> Verdict {
        let client_id = request.client_id;
        let Some(name) = request.certificate_identity.filter(|name| !name.is_empty()) else {
            log::info!("client {client_id:?} refused: its certificate names no identity");
            return Verdict::NotAuthorized;
        };
        let grants = self.configured_grants(client_id, name);
        let principal =
            Principal::new(client_id, Identity::Certificate { name: name.into(), grants });
        self.admit(principal, request, format_args!("certificate {name:?}"))
    }

    /// Accepts a users-file, certificate or anonymous principal unless its will is not
    /// writable.
    fn admit(
        &self,
        principal: Principal,
        request: &ConnectRequest<'_>,
        what: std::fmt::Arguments<'_>,
    ) -> Verdict {
        let client_id = request.client_id;
        if let Some(topic) = request.will_topic
            && !self.acl(&principal, Access::Write, topic)
        {
            log::info!("client {client_id:?} refused: its will topic is not writable");
            return Verdict::NotAuthorized;
        }
        log::info!("client {client_id:?} accepted: {what}");
        Verdict::Accept(Arc::new(principal))
    }

    /// Decides one ACL check now: token clients by the core's policy (counted, like the
    /// plugin's), users-file and anonymous clients by their configured grants.
    pub fn acl(&self, principal: &Principal, access: Access, topic: &str) -> bool {
        let now = now_epoch();
        match principal.identity() {
            Identity::Token(client) => {
                client.check(access, topic, now, &mut self.metrics()) == AclVerdict::Allow
            }
            Identity::User { grants, .. }
            | Identity::Certificate { grants, .. }
            | Identity::Anonymous { grants } => {
                let allowed = grants.allows(access, topic);
                if !allowed {
                    policy::log_acl_denial(principal.client_id(), access, topic, Denial::NoGrant);
                }
                allowed
            }
        }
    }

    /// SIGHUP: forget cached token verdicts (e.g. after revocations) and re-read the users file
    /// (keeping the old one if the new one is broken). Connected clients keep their rights.
    pub fn reload(&self) {
        self.auth.forget_all();
        let mut note = String::new();
        if let Some(path) = &self.users_file {
            match UsersFile::load(path) {
                Ok(users) => {
                    note = format!("; users file re-read ({} user(s))", users.len());
                    *self.users.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(users);
                }
                Err(problem) => {
                    log::error!("reload: keeping the previous users file: {problem}");
                }
            }
        }
        log::info!("reload: token cache flushed{note}; connected clients kept");
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// A `$6$` users-file line, as `mosquitto_passwd -H sha512` writes it.
    fn sha512_line(user: &str, password: &str) -> String {
        let salt = b"fixed-salt-1";
        let mut context = digest::Context::new(&digest::SHA512);
        context.update(password.as_bytes());
        context.update(salt);
        format!("{user}:$6${}${}\n", STANDARD.encode(salt), STANDARD.encode(context.finish()))
    }

    const ALICE: &str = "alice:$7$101$6mt3a5sdnezAGHNp$7ieqI2x9aPo1UTwWZcGQ4qxGMjfHWkhfdIJ86+XV9sgpDZs/dE/9gveWKuTy8uz4IwggCqtuCQRnDTQ5noC+Dw==\n";

    /// A public RSA key (kid "test") that signed nothing the tests present.
    const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"test","alg":"RS256","use":"sig","n":"2Ulb9ROr_1AKZVaveQzY-43F7TGQRWbDpThlx9AHFTtpGJFe88pS1Wm4Kti-N9luQA2qExpugBSXEtDZogaiQg9NrV1i9a08HL6H9tRQWNayyUJ-ONQyBUHM697jItafefCz5vGgCgEPdFXgdialA8mM1236uVZrYk6XiaLPMroGjQt4muW32Xk_yWyRjtT10kLhNSIypw0HSmfwU_hmWU0zm1Wumt2vZSpBWDCXL_C2z4wMy0LZUkLcvSFvUUN3Z-R8c9pZHMNRbw8nqcTM4m7G9aOxesb4YyYUHBQyZQXIPgKCtMwrr0Re1nOyxIpECNZGcSaawRh4elJ6CByV3Q","e":"AQAB"}]}"#;

    /// A policy whose authorization server does not exist (port 9 on loopback refuses), and
    /// whose JWT key signed nothing: every token is either unverifiable (introspection →
    /// unavailable) or rejected (JWT → unknown key).
    fn make_policy(extra_auth: &str, extra: &str) -> (Policy, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("passwd"),
            format!("{ALICE}{}", sha512_line("bob", "two words")),
        )
        .expect("written");
        std::fs::write(dir.path().join("jwks.json"), JWKS).expect("written");
        let text = format!(
            "[auth]\nintrospection_url = \"http://127.0.0.1:9/introspect\"\nclient_id = \"b\"\n\
             client_secret = \"s\"\njwks_file = \"jwks.json\"\nhttp_timeout_ms = 500\n{extra_auth}\n\
             [[listener]]\nbind = \"127.0.0.1:1883\"\n\
             [users]\nfile = \"passwd\"\n[[users.grants]]\nusername = \"alice\"\n\
             read = [\"ops/#\", \"clients/%c/#\"]\nwrite = [\"ops/%u/#\"]\n{extra}"
        );
        let config = BrokerConfig::parse(&text, dir.path()).expect("config parses");
        (Policy::new(&config).expect("policy builds"), dir)
    }

    fn request<'a>(
        username: Option<&'a str>,
        password: Option<&'a [u8]>,
        will_topic: Option<&'a str>,
    ) -> ConnectRequest<'a> {
        ConnectRequest {
            client_id: "c1",
            username,
            password,
            will_topic,
            certificate_listener: false,
            certificate_identity: None,
        }
    }

    fn accepted(verdict: Verdict) -> Arc<Principal> {
        match verdict {
            Verdict::Accept(principal) => principal,
            other => panic!("not accepted: {other:?}"),
        }
    }

    /// Header.claims.signature shape, so the JWT path is taken (and rejected: no keys).
    const FAKE_JWT: &[u8] = b"eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vIn0.eyJzdWIiOiJ4In0.c2ln";

    #[test]
    fn users_file_users_get_their_configured_grants() {
        let (policy, _dir) = make_policy("token_username = \"oauth2\"", "");
        let alice = accepted(policy.connect(&request(Some("alice"), Some(b"secret"), None)));
        assert!(alice.token_client().is_none());
        let now = now_epoch();
        assert!(alice.allows(Access::Subscribe, "ops/#", now));
        assert!(alice.allows(Access::Read, "clients/c1/x", now));
        assert!(!alice.allows(Access::Read, "clients/c2/x", now));
        assert!(alice.allows(Access::Write, "ops/alice/x", now));
        assert!(!alice.allows(Access::Write, "ops/bob/x", now));
        assert!(!alice.allows(Access::Read, "$SYS/x", now));
        assert!(matches!(
            policy.connect(&request(Some("alice"), Some(b"wrong"), None)),
            Verdict::BadCredentials
        ));
        assert!(matches!(
            policy.connect(&request(Some("mallory"), Some(b"secret"), None)),
            Verdict::BadCredentials
        ));
        assert!(matches!(
            policy.connect(&request(Some("alice"), None, None)),
            Verdict::BadCredentials
        ));
        // Token logins are not counted as users-file attempts, and vice versa.
        let snapshot = policy.authenticator().metrics().snapshot();
        assert_eq!((snapshot.connects_accepted, snapshot.connects_deferred), (0, 4));
        assert_eq!(policy.authenticator().metrics().snapshot().upstream_calls, 0);
    }

    fn certificate_request<'a>(
        identity: Option<&'a str>,
        username: Option<&'a str>,
        password: Option<&'a [u8]>,
    ) -> ConnectRequest<'a> {
        ConnectRequest {
            certificate_listener: true,
            certificate_identity: identity,
            ..request(username, password, None)
        }
    }

    #[test]
    fn certificate_logins_get_the_grants_of_their_identity_and_a_password_decides_instead() {
        let (policy, _dir) = make_policy(
            "token_username = \"oauth2\"\nallow_anonymous = true",
            "[[users.grants]]\nusername = \"tenant1:dev7\"\nwrite = [\"%u/attrs\"]\n\
             read = [\"%u/config\"]\n",
        );
        let now = now_epoch();
        let device =
            accepted(policy.connect(&certificate_request(Some("tenant1:dev7"), None, None)));
        assert!(
            matches!(device.identity(), Identity::Certificate { name, .. } if &**name == "tenant1:dev7")
        );
        assert!(device.allows(Access::Write, "tenant1:dev7/attrs", now));
        assert!(device.allows(Access::Subscribe, "tenant1:dev7/config", now));
        assert!(!device.allows(Access::Write, "tenant2:dev1/attrs", now));
        assert!(!device.allows(Access::Write, "tenant1:dev7/config", now));

        // A username without password changes nothing: the certificate names the client.
        let named = accepted(policy.connect(&certificate_request(
            Some("tenant1:dev7"),
            Some("alice"),
            None,
        )));
        assert!(!named.allows(Access::Subscribe, "ops/#", now));
        assert!(named.allows(Access::Write, "tenant1:dev7/attrs", now));

        // An identity without grants connects and may do nothing.
        let stranger =
            accepted(policy.connect(&certificate_request(Some("tenant9:x"), None, None)));
        assert!(!stranger.allows(Access::Write, "tenant9:x/attrs", now));

        // No identity in the certificate: refused, never anonymous on such a listener.
        assert!(matches!(
            policy.connect(&certificate_request(None, None, None)),
            Verdict::NotAuthorized
        ));
        assert!(matches!(
            policy.connect(&certificate_request(Some(""), None, None)),
            Verdict::NotAuthorized
        ));

        // With a password the password decides: a users-file user, or a wrong password refused.
        let alice = accepted(policy.connect(&certificate_request(
            Some("tenant1:dev7"),
            Some("alice"),
            Some(b"secret"),
        )));
        assert!(matches!(alice.identity(), Identity::User { .. }));
        assert!(!alice.allows(Access::Write, "tenant1:dev7/attrs", now));
        assert!(matches!(
            policy.connect(&certificate_request(
                Some("tenant1:dev7"),
                Some("alice"),
                Some(b"wrong")
            )),
            Verdict::BadCredentials
        ));
        // A token that cannot be verified is refused, never taken as a certificate login.
        assert!(matches!(
            policy.connect(&certificate_request(
                Some("tenant1:dev7"),
                Some("oauth2"),
                Some(b"opaque")
            )),
            Verdict::NotAuthorized
        ));
    }

    #[test]
    fn wills_must_be_writable() {
        let (policy, _dir) = make_policy("token_username = \"oauth2\"", "");
        assert!(matches!(
            policy.connect(&request(Some("alice"), Some(b"secret"), Some("ops/alice/will"))),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            policy.connect(&request(Some("alice"), Some(b"secret"), Some("ops/bob/will"))),
            Verdict::NotAuthorized
        ));
    }

    #[test]
    fn anonymous_clients_are_refused_unless_allowed() {
        let (policy, _dir) = make_policy("token_username = \"oauth2\"", "");
        assert!(matches!(policy.connect(&request(None, None, None)), Verdict::NotAuthorized));
        // A password without username is not anonymous, and no mechanism takes it.
        assert!(matches!(
            policy.connect(&request(None, Some(b"x"), None)),
            Verdict::BadCredentials
        ));

        let (policy, _dir) = make_policy(
            "token_username = \"oauth2\"\nallow_anonymous = true",
            "[anonymous]\nread = [\"public/#\"]\n",
        );
        let anonymous = accepted(policy.connect(&request(None, None, None)));
        assert!(anonymous.allows(Access::Subscribe, "public/a/#", now_epoch()));
        assert!(!anonymous.allows(Access::Write, "public/a", now_epoch()));
        assert!(matches!(
            policy.connect(&request(None, None, Some("public/x"))),
            Verdict::NotAuthorized
        ));
    }

    #[test]
    fn rejected_tokens_are_bad_credentials_and_unverifiable_ones_are_refused() {
        let (policy, _dir) = make_policy("", "");
        // JWT-shaped, no matching key: rejected, nobody else accepts it.
        assert!(matches!(
            policy.connect(&request(Some("dev"), Some(FAKE_JWT), None)),
            Verdict::BadCredentials
        ));
        // v5 password without username: still a token login.
        assert!(matches!(
            policy.connect(&request(None, Some(FAKE_JWT), None)),
            Verdict::BadCredentials
        ));
        // Binary and oversized passwords never reach the authorization server.
        for password in [&b"\0abc"[..], &[0xff, 0xfe][..], &vec![b'a'; 65_535][..]] {
            assert!(matches!(
                policy.connect(&request(Some("user"), Some(password), None)),
                Verdict::BadCredentials
            ));
        }
        assert_eq!(policy.authenticator().metrics().snapshot().upstream_calls, 0);
        // Opaque: introspection at a closed port cannot answer → refused, not "bad".
        assert!(matches!(
            policy.connect(&request(Some("dev"), Some(b"opaque-token"), None)),
            Verdict::NotAuthorized
        ));
        let snapshot = policy.authenticator().metrics().snapshot();
        assert_eq!(snapshot.connects_denied, 6);
    }

    #[test]
    fn users_file_users_never_log_in_with_a_token() {
        // Without token_username a users-file user's login is theirs (as with the plugin's
        // password_file): never a token candidate, so neither their password reaches the
        // authorization server nor can a token holder take their name.
        let (policy, _dir) = make_policy("", "");
        let bob = accepted(policy.connect(&request(Some("bob"), Some(b"two words"), None)));
        assert!(matches!(bob.identity(), Identity::User { name, .. } if &**name == "bob"));
        let metrics = policy.authenticator().metrics().snapshot();
        assert_eq!((metrics.connects_deferred, metrics.connects_denied), (1, 0));
        assert_eq!(metrics.cache_misses, 0);
    }
}
