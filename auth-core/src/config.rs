//! Typed configuration built from the `(key, value)` pairs a host passes in.
//!
//! Mosquitto hands plugins its `auth_opt_*`/`plugin_opt_*` lines with the prefix removed, so the
//! keys here are `oauth_*`, plus gomozzie's `openam_*` names as aliases. Keys without either
//! prefix belong to other plugins and are ignored. Anything wrong is a [`ConfigError`] that names
//! the option.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::secret::Secret;

/// Default `oauth_leeway`: seconds a token's `nbf` may lie ahead of our clock (`exp` is strict).
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// Default `oauth_scope_prefix`.
pub const DEFAULT_SCOPE_PREFIX: &str = "mqtt:";
/// Default `oauth_cache_ttl`: longest time a valid token is trusted without asking again.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 300;
/// Default `oauth_cache_negative_ttl`: how long a rejected token stays rejected without asking.
pub const DEFAULT_CACHE_NEGATIVE_TTL_SECS: u64 = 10;
/// Default `oauth_cache_max_entries`.
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 100_000;
/// Default `oauth_http_timeout_ms`: total budget of one call to the authorization server.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 2_000;
/// Default `oauth_login_wait_budget_ms` (at most `oauth_http_timeout_ms`): how long a broker
/// thread may wait for the authorization server in one pass of its event loop. Short, so that a
/// flood of logins with unknown tokens cannot stall connected clients by seconds: a message
/// waits about two budgets at most (benchmark C), and a refused device's reconnect is answered
/// from the cache.
pub const DEFAULT_LOGIN_WAIT_BUDGET_MS: u64 = 150;
/// Default `oauth_stats_interval`: seconds between counter publications (0 = off).
pub const DEFAULT_STATS_INTERVAL_SECS: u64 = 10;
/// Default `oauth_revalidate_interval`: seconds between re-checks of live sessions' tokens.
pub const DEFAULT_REVALIDATE_INTERVAL_SECS: u64 = 60;
/// Default `oauth_auth_method`: MQTT 5 Authentication Method whose data is the access token.
pub const DEFAULT_AUTH_METHOD: &str = "OAUTHBEARER";
/// Default `oauth_algorithms`: every asymmetric algorithm; symmetric ones are never accepted.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

const MAX_LEEWAY_SECS: u64 = 3_600;
const MAX_HTTP_TIMEOUT_MS: u64 = 60_000;

/// A configuration problem, always naming the option it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An `oauth_*`/`openam_*` key this version does not know.
    #[error("unknown option {key}{hint}")]
    Unknown {
        /// The key as given.
        key: String,
        /// " (did you mean ...?)" or empty.
        hint: String,
    },
    /// A value that cannot be used.
    #[error("option {key}: {problem}")]
    Invalid {
        /// The key as given.
        key: String,
        /// What is wrong, and what is expected.
        problem: String,
    },
    /// The same setting given twice (possibly through an alias).
    #[error("option {key} is given twice (also as {first})")]
    Duplicate {
        /// The second occurrence.
        key: String,
        /// The first occurrence.
        first: String,
    },
    /// A setting required by the others is missing.
    #[error("option {key} is required: {reason}")]
    Missing {
        /// The missing key.
        key: &'static str,
        /// Why it is needed.
        reason: &'static str,
    },
    /// Two settings that cannot be used together.
    #[error("options {first} and {second} cannot be used together")]
    Conflict {
        /// One key.
        first: &'static str,
        /// The other key.
        second: &'static str,
    },
}

impl ConfigError {
    /// The option the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Unknown { key, .. } | Self::Invalid { key, .. } | Self::Duplicate { key, .. } => {
                key
            }
            Self::Missing { key, .. } | Self::Conflict { first: key, .. } => key,
        }
    }

    pub(crate) fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::Invalid { key: key.to_owned(), problem: problem.into() }
    }
}

/// How tokens are validated (`oauth_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// JWT-shaped tokens are verified locally when keys are configured; others are introspected.
    #[default]
    Auto,
    /// Every token is introspected (RFC 7662).
    Introspect,
    /// Every token must be a JWT verified locally against the JWKS.
    Jwt,
}

/// How the introspection request authenticates (`oauth_client_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    #[default]
    Basic,
    /// Credentials in the form body (`client_secret_post`).
    Post,
}

/// Where log lines go (`oauth_log_dest`, gomozzie's `openam_log_dest`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDest {
    /// The host's own log (Mosquitto's `log_dest`).
    #[default]
    Host,
    /// Nowhere.
    None,
    /// Standard output.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

/// The introspection endpoint and our credentials for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    /// Endpoint URL, used exactly as given (AM's realm-in-path or `?realm=` forms both work).
    pub url: String,
    /// Our client id at the authorization server.
    pub client_id: String,
    /// Our client secret.
    pub client_secret: Secret,
    /// Basic or post.
    pub client_auth: ClientAuth,
}

/// Where the verification keys for local JWT checks come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document at this URL.
    Url(String),
    /// A JWKS document in this file, read at start.
    File(PathBuf),
    /// `jwks_uri` from `<issuer>/.well-known/openid-configuration`.
    Discovery(String),
}

/// Cache sizing (`oauth_cache_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Upper bound on how long a valid token is trusted; 0 disables positive caching.
    pub ttl: Duration,
    /// How long a rejection is remembered; 0 disables negative caching.
    pub negative_ttl: Duration,
    /// Entries kept at most.
    pub max_entries: u64,
}

/// Everything the core needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Validation mode.
    pub mode: Mode,
    /// Introspection, when configured.
    pub introspection: Option<IntrospectionSettings>,
    /// JWT keys, when configured.
    pub keys: Option<KeySource>,
    /// Expected `iss`; checked whenever set.
    pub issuer: Option<String>,
    /// Accepted audiences; a token must name at least one when set.
    pub audiences: Vec<String>,
    /// Algorithms accepted for local JWT verification.
    pub algorithms: Vec<Algorithm>,
    /// How far a token's `nbf` may lie ahead of our clock (server clock skew); `exp` is strict.
    pub leeway: Duration,
    /// Prefix of topic scopes (`<prefix>read:<filter>`, `<prefix>write:<filter>`).
    pub scope_prefix: String,
    /// Scopes a token must carry to connect at all.
    pub required_scopes: Vec<String>,
    /// When set, only logins with this username carry a token; others are left to the broker.
    pub token_username: Option<String>,
    /// Claim that must equal the MQTT client id.
    pub client_id_claim: Option<String>,
    /// Claim whose value becomes the client's username.
    pub username_claim: Option<String>,
    /// Cache sizing.
    pub cache: CacheSettings,
    /// Total time budget of one HTTP call.
    pub http_timeout: Duration,
    /// How long a host's own thread may wait for the authorization server in one pass of its
    /// event loop, all logins of the pass together (default: [`DEFAULT_LOGIN_WAIT_BUDGET_MS`],
    /// at most `http_timeout`).
    pub login_wait_budget: Duration,
    /// PEM file with the only CA certificates trusted for HTTPS (default: system roots).
    pub ca_file: Option<PathBuf>,
    /// Log destination.
    pub log_dest: LogDest,
    /// Seconds between counter publications; zero disables them.
    pub stats_interval: Duration,
    /// Disconnect clients when their token expires.
    pub disconnect_on_expiry: bool,
    /// Interval for re-checking live sessions' tokens (revocation); zero disables it.
    pub revalidate_interval: Duration,
    /// MQTT 5 Authentication Method carrying the token.
    pub auth_method: String,
}

/// Every option this version understands, as (canonical key, aliases).
const OPTIONS: &[(&str, &[&str])] = &[
    ("oauth_mode", &[]),
    ("oauth_introspection_url", &["openam_endpoint"]),
    ("oauth_client_id", &["openam_client_id"]),
    ("oauth_client_secret", &["openam_client_secret"]),
    ("oauth_client_secret_file", &[]),
    ("oauth_client_auth", &[]),
    ("oauth_issuer", &[]),
    ("oauth_jwks_url", &[]),
    ("oauth_jwks_file", &[]),
    ("oauth_audience", &[]),
    ("oauth_algorithms", &[]),
    ("oauth_leeway", &[]),
    ("oauth_scope_prefix", &[]),
    ("oauth_required_scopes", &[]),
    ("oauth_token_username", &[]),
    ("oauth_client_id_claim", &[]),
    ("oauth_username_claim", &[]),
    ("oauth_cache_ttl", &[]),
    ("oauth_cache_negative_ttl", &[]),
    ("oauth_cache_max_entries", &[]),
    ("oauth_http_timeout_ms", &[]),
    ("oauth_login_wait_budget_ms", &[]),
    ("oauth_ca_file", &[]),
    ("oauth_log_dest", &["openam_log_dest"]),
    ("oauth_stats_interval", &[]),
    ("oauth_disconnect_on_expiry", &[]),
    ("oauth_revalidate_interval", &[]),
    ("oauth_auth_method", &[]),
];

/// True for keys this crate owns (`oauth_*` and gomozzie's `openam_*`).
pub fn is_own_key(key: &str) -> bool {
    key.starts_with("oauth_") || key.starts_with("openam_")
}

/// The options as given, one slot per canonical key, remembering which spelling was used.
struct Given<'a> {
    slots: Vec<Option<(&'a str, &'a str)>>,
}

impl<'a> Given<'a> {
    fn collect(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, ConfigError> {
        let mut slots: Vec<Option<(&'a str, &'a str)>> = vec![None; OPTIONS.len()];
        for (key, value) in pairs {
            if !is_own_key(key) {
                continue;
            }
            let index = OPTIONS
                .iter()
                .position(|(canonical, aliases)| *canonical == key || aliases.contains(&key))
                .ok_or_else(|| ConfigError::Unknown { key: key.to_owned(), hint: suggest(key) })?;
            if let Some((first, _)) = slots[index] {
                return Err(ConfigError::Duplicate {
                    key: key.to_owned(),
                    first: first.to_owned(),
                });
            }
            slots[index] = Some((key, value.trim()));
        }
        Ok(Self { slots })
    }

    /// (key as given, value) of a canonical option.
    fn get(&self, canonical: &str) -> Option<(&'a str, &'a str)> {
        let index = OPTIONS.iter().position(|(c, _)| *c == canonical)?;
        self.slots[index]
    }

    fn text(&self, canonical: &str) -> Result<Option<String>, ConfigError> {
        match self.get(canonical) {
            Some((key, "")) => Err(ConfigError::invalid(key, "must not be empty")),
            Some((_, value)) => Ok(Some(value.to_owned())),
            None => Ok(None),
        }
    }

    fn number(&self, canonical: &str, default: u64, range: (u64, u64)) -> Result<u64, ConfigError> {
        let Some((key, value)) = self.get(canonical) else { return Ok(default) };
        match value.parse::<u64>() {
            Ok(n) if (range.0..=range.1).contains(&n) => Ok(n),
            _ => Err(ConfigError::invalid(
                key,
                format!("expected a whole number from {} to {}, got {value:?}", range.0, range.1),
            )),
        }
    }

    fn flag(&self, canonical: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(canonical) {
            None => Ok(default),
            Some((_, "true" | "yes" | "on" | "1")) => Ok(true),
            Some((_, "false" | "no" | "off" | "0")) => Ok(false),
            Some((key, other)) => {
                Err(ConfigError::invalid(key, format!("expected true or false, got {other:?}")))
            }
        }
    }

    fn list(&self, canonical: &str) -> Vec<String> {
        self.get(canonical).map(|(_, value)| split_list(value)).unwrap_or_default()
    }

    fn url(&self, canonical: &str) -> Result<Option<String>, ConfigError> {
        let Some((key, value)) = self.get(canonical) else { return Ok(None) };
        validate_url(key, value).map(Some)
    }

    fn path(&self, canonical: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.text(canonical)?.map(PathBuf::from))
    }
}

fn split_list(value: &str) -> Vec<String> {
    value.split([',', ' ', '\t']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn validate_url(key: &str, value: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(key, "must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            key,
            "must not carry credentials; use oauth_client_id and oauth_client_secret",
        ));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        log::warn!("{key}: plain http to a non-loopback host sends tokens unencrypted; use https");
    }
    Ok(value.to_owned())
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn parse_algorithms(key: &str, value: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let mut algorithms = Vec::new();
    for name in split_list(value) {
        let algorithm = match name.as_str() {
            "HS256" | "HS384" | "HS512" => {
                return Err(ConfigError::invalid(
                    key,
                    format!("{name} is symmetric; only asymmetric algorithms are accepted"),
                ));
            }
            "none" | "None" | "NONE" => {
                return Err(ConfigError::invalid(key, "\"none\" would accept unsigned tokens"));
            }
            other => other.parse::<Algorithm>().map_err(|_| {
                ConfigError::invalid(
                    key,
                    format!("unknown algorithm {other:?}; expected names like RS256, PS256, ES256, EdDSA"),
                )
            })?,
        };
        if !algorithms.contains(&algorithm) {
            algorithms.push(algorithm);
        }
    }
    if algorithms.is_empty() {
        return Err(ConfigError::invalid(key, "lists no algorithm"));
    }
    Ok(algorithms)
}

fn parse_log_dest(key: &str, value: &str) -> Result<LogDest, ConfigError> {
    match value.split_once(char::is_whitespace) {
        None if value == "none" => Ok(LogDest::None),
        None if value == "stdout" => Ok(LogDest::Stdout),
        None if value == "host" || value == "mosquitto" => Ok(LogDest::Host),
        Some(("file", path)) if !path.trim().is_empty() => Ok(LogDest::File(path.trim().into())),
        _ => Err(ConfigError::invalid(
            key,
            format!("expected none, stdout, host or \"file <path>\", got {value:?}"),
        )),
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let content = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = content.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(ConfigError::invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
}

/// " (did you mean X?)" for a key within two edits of a known one.
fn suggest(key: &str) -> String {
    OPTIONS
        .iter()
        .flat_map(|(canonical, aliases)| std::iter::once(canonical).chain(aliases.iter()))
        .map(|known| (edit_distance(key, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| format!(" (did you mean {known}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous_diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous_diagonal + usize::from(ca != *cb);
            previous_diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

impl Config {
    /// Builds and validates the configuration from `(key, value)` pairs.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let given = Given::collect(pairs)?;

        let mode = match given.get("oauth_mode") {
            None | Some((_, "auto")) => Mode::Auto,
            Some((_, "introspect")) => Mode::Introspect,
            Some((_, "jwt")) => Mode::Jwt,
            Some((key, other)) => {
                return Err(ConfigError::invalid(
                    key,
                    format!("expected auto, introspect or jwt, got {other:?}"),
                ));
            }
        };
        let client_auth = match given.get("oauth_client_auth") {
            None | Some((_, "basic")) => ClientAuth::Basic,
            Some((_, "post")) => ClientAuth::Post,
            Some((key, other)) => {
                return Err(ConfigError::invalid(
                    key,
                    format!("expected basic or post, got {other:?}"),
                ));
            }
        };

        let introspection = Self::introspection(&given, client_auth)?;
        let issuer = given.url("oauth_issuer")?.map(|url| url.trim_end_matches('/').to_owned());
        let keys = match (given.url("oauth_jwks_url")?, given.path("oauth_jwks_file")?) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: "oauth_jwks_url",
                    second: "oauth_jwks_file",
                });
            }
            (Some(url), None) => Some(KeySource::Url(url)),
            (None, Some(path)) => Some(KeySource::File(path)),
            (None, None) => issuer.clone().map(KeySource::Discovery),
        };

        match mode {
            Mode::Introspect if introspection.is_none() => {
                return Err(ConfigError::Missing {
                    key: "oauth_introspection_url",
                    reason: "oauth_mode introspect needs the introspection endpoint",
                });
            }
            Mode::Jwt if keys.is_none() => {
                return Err(ConfigError::Missing {
                    key: "oauth_jwks_url",
                    reason: "oauth_mode jwt needs keys: oauth_jwks_url, oauth_jwks_file or oauth_issuer (discovery)",
                });
            }
            Mode::Auto if introspection.is_none() && keys.is_none() => {
                return Err(ConfigError::Missing {
                    key: "oauth_introspection_url",
                    reason: "set an introspection endpoint or JWT keys (oauth_jwks_url, oauth_jwks_file, oauth_issuer)",
                });
            }
            _ => {}
        }

        let algorithms = match given.get("oauth_algorithms") {
            Some((key, value)) => parse_algorithms(key, value)?,
            None => DEFAULT_ALGORITHMS.to_vec(),
        };
        let scope_prefix = match given.get("oauth_scope_prefix") {
            Some((key, value)) if value.contains(char::is_whitespace) || value.is_empty() => {
                return Err(ConfigError::invalid(key, "must be a non-empty word without spaces"));
            }
            Some((_, value)) => value.to_owned(),
            None => DEFAULT_SCOPE_PREFIX.to_owned(),
        };
        let http_timeout = Duration::from_millis(given.number(
            "oauth_http_timeout_ms",
            DEFAULT_HTTP_TIMEOUT_MS,
            (1, MAX_HTTP_TIMEOUT_MS),
        )?);
        let log_dest = match given.get("oauth_log_dest") {
            Some((key, value)) => parse_log_dest(key, value)?,
            None => LogDest::Host,
        };

        Ok(Self {
            mode,
            introspection,
            keys,
            issuer,
            audiences: given.list("oauth_audience"),
            algorithms,
            leeway: Duration::from_secs(given.number(
                "oauth_leeway",
                DEFAULT_LEEWAY_SECS,
                (0, MAX_LEEWAY_SECS),
            )?),
            scope_prefix,
            required_scopes: given.list("oauth_required_scopes"),
            token_username: given.text("oauth_token_username")?,
            client_id_claim: given.text("oauth_client_id_claim")?,
            username_claim: given.text("oauth_username_claim")?,
            cache: CacheSettings {
                ttl: Duration::from_secs(given.number(
                    "oauth_cache_ttl",
                    DEFAULT_CACHE_TTL_SECS,
                    (0, 86_400),
                )?),
                negative_ttl: Duration::from_secs(given.number(
                    "oauth_cache_negative_ttl",
                    DEFAULT_CACHE_NEGATIVE_TTL_SECS,
                    (0, 3_600),
                )?),
                max_entries: given.number(
                    "oauth_cache_max_entries",
                    DEFAULT_CACHE_MAX_ENTRIES,
                    (1, 100_000_000),
                )?,
            },
            http_timeout,
            login_wait_budget: Duration::from_millis(
                given.number(
                    "oauth_login_wait_budget_ms",
                    u64::try_from(http_timeout.as_millis())
                        .unwrap_or(MAX_HTTP_TIMEOUT_MS)
                        .min(DEFAULT_LOGIN_WAIT_BUDGET_MS),
                    (0, MAX_HTTP_TIMEOUT_MS),
                )?,
            ),
            ca_file: given.path("oauth_ca_file")?,
            log_dest,
            stats_interval: Duration::from_secs(given.number(
                "oauth_stats_interval",
                DEFAULT_STATS_INTERVAL_SECS,
                (0, 86_400),
            )?),
            disconnect_on_expiry: given.flag("oauth_disconnect_on_expiry", true)?,
            revalidate_interval: Duration::from_secs(given.number(
                "oauth_revalidate_interval",
                DEFAULT_REVALIDATE_INTERVAL_SECS,
                (0, 86_400),
            )?),
            auth_method: given
                .text("oauth_auth_method")?
                .unwrap_or_else(|| DEFAULT_AUTH_METHOD.to_owned()),
        })
    }

    fn introspection(
        given: &Given<'_>,
        client_auth: ClientAuth,
    ) -> Result<Option<IntrospectionSettings>, ConfigError> {
        let secret = match (given.get("oauth_client_secret"), given.get("oauth_client_secret_file"))
        {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: "oauth_client_secret",
                    second: "oauth_client_secret_file",
                });
            }
            (Some((key, "")), None) => return Err(ConfigError::invalid(key, "must not be empty")),
            (Some((_, value)), None) => Some(Secret::new(value)),
            (None, Some((key, path))) => Some(read_secret_file(key, Path::new(path))?),
            (None, None) => None,
        };
        let client_id = given.text("oauth_client_id")?;
        let Some(url) = given.url("oauth_introspection_url")? else {
            return Ok(None);
        };
        let client_id = client_id.ok_or(ConfigError::Missing {
            key: "oauth_client_id",
            reason: "the introspection endpoint needs our client credentials",
        })?;
        let client_secret = secret.ok_or(ConfigError::Missing {
            key: "oauth_client_secret",
            reason: "the introspection endpoint needs our client credentials (or use oauth_client_secret_file)",
        })?;
        Ok(Some(IntrospectionSettings { url, client_id, client_secret, client_auth }))
    }

    /// The start-up warning about identities a token holder picks itself: `%c` and `%u` in a
    /// token's grants stand for the client id and username the client presents, unless
    /// `oauth_client_id_claim` binds the client id and `oauth_username_claim` the username to
    /// the token (with `oauth_token_username` every token login has the marker as username).
    pub fn unbound_identity_warning(&self) -> Option<String> {
        let mut unbound = Vec::new();
        if self.client_id_claim.is_none() {
            unbound.push("%c stands for any client id the client picks (set oauth_client_id_claim, e.g. to sub, to bind it)");
        }
        if self.username_claim.is_none() {
            unbound.push(match self.token_username {
                Some(_) => "%u stands for the oauth_token_username marker, the same for every token (set oauth_username_claim to bind it)",
                None => "%u stands for any username the client picks (set oauth_username_claim to bind it)",
            });
        }
        (!unbound.is_empty()).then(|| {
            format!(
                "in a token's grants, {}: grant such filters only if that is intended",
                unbound.join("; ")
            )
        })
    }

    /// True when a login with this username presents a token as its password. With
    /// `oauth_token_username`, only logins with that username do. Without it, every login does
    /// except those of a local user (in the broker's password or users file, `is_local_user`):
    /// such a login is that user's, so its password never reaches the authorization server, and
    /// a token holder cannot take a local user's name, which other mechanisms trust.
    pub fn is_token_login(
        &self,
        username: Option<&str>,
        is_local_user: impl FnOnce(&str) -> bool,
    ) -> bool {
        match &self.token_username {
            Some(marker) => username == Some(marker.as_str()),
            None => username.is_none_or(|name| !is_local_user(name)),
        }
    }
}
