//! Typed configuration, deserialized the same way by both hosts.
//!
//! A host hands over its options as `(name, value)` entries ([`OptionValue`]: Mosquitto's are all
//! text, a TOML section's are typed); serde maps them onto the core's options (gomozzie's
//! `openam_*` names are aliases, an unknown name is refused with a suggestion, the same option
//! twice is refused), then [`Config::from_options`] validates them. Every error names the option
//! the way its host spells it ([`Spelling`]: `oauth_leeway` for the plugin, `auth.leeway` for the
//! fallback broker). Options only one host has (the plugin's log destination, the fallback
//! broker's anonymous access, ...) live in that host's own struct, deserialized by
//! [`deserialize_options`] from the entries left over.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};

use crate::binding::CertificateBinding;
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
/// Default `oauth_revalidate_interval`: seconds between re-checks of live sessions' tokens.
pub const DEFAULT_REVALIDATE_INTERVAL_SECS: u64 = 60;
/// Default `oauth_revalidate_max_rps`: most re-checks per second sent to the authorization
/// server (a round of N tokens is spread over the interval, and never goes faster than this).
pub const DEFAULT_REVALIDATE_MAX_RPS: u64 = 100;
/// Default `oauth_revalidate_concurrency`: re-checks in flight at once.
pub const DEFAULT_REVALIDATE_CONCURRENCY: u64 = 4;
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
/// Largest `oauth_http_timeout_ms`.
pub const MAX_HTTP_TIMEOUT_MS: u64 = 60_000;

/// A configuration problem, always naming the option it is about, spelled as its host spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An option this version does not know.
    #[error("unknown option {key}{hint}")]
    Unknown {
        /// The option as given.
        key: String,
        /// " (did you mean ...?)" or empty.
        hint: String,
    },
    /// A value that cannot be used.
    #[error("option {key}: {problem}")]
    Invalid {
        /// The option.
        key: String,
        /// What is wrong, and what is expected.
        problem: String,
    },
    /// The same setting given twice (possibly once through an alias).
    #[error("option {key} is given more than once (under its name or an alias)")]
    Duplicate {
        /// The option.
        key: String,
    },
    /// A setting required by the others is missing.
    #[error("option {key} is required: {reason}")]
    Missing {
        /// The missing option.
        key: String,
        /// Why it is needed.
        reason: String,
    },
    /// Two settings that cannot be used together.
    #[error("options {first} and {second} cannot be used together")]
    Conflict {
        /// One option.
        first: String,
        /// The other option.
        second: String,
    },
}

impl ConfigError {
    /// The option the error is about.
    pub fn key(&self) -> &str {
        match self {
            Self::Unknown { key, .. }
            | Self::Invalid { key, .. }
            | Self::Duplicate { key }
            | Self::Missing { key, .. }
            | Self::Conflict { first: key, .. } => key,
        }
    }

    /// A value problem of the option spelled `key`.
    pub fn invalid(key: &str, problem: impl Into<String>) -> Self {
        Self::Invalid { key: key.to_owned(), problem: problem.into() }
    }
}

/// How a host spells the options in its configuration file and in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spelling {
    prefix: Cow<'static, str>,
}

impl Spelling {
    /// Mosquitto's plugin options: `oauth_<name>` (`plugin_opt_oauth_<name>` in the file).
    pub const PLUGIN: Self = Self { prefix: Cow::Borrowed("oauth_") };

    /// Options of a TOML section: `<section>.<name>`; `prefix` is the section with its dot.
    pub const fn section(prefix: &'static str) -> Self {
        Self { prefix: Cow::Borrowed(prefix) }
    }

    /// The options of issuer profile `name`: `oauth_issuers.<name>.<option>` for the plugin,
    /// `auth.issuers.<name>.<option>` in a TOML section.
    fn profile(&self, name: &str) -> Self {
        Self { prefix: Cow::Owned(format!("{}{PROFILE_PREFIX}{name}.", self.prefix)) }
    }

    /// The option `name` as the host spells it; gomozzie's `openam_*` names stay as they are.
    pub fn of(&self, name: &str) -> String {
        if name.starts_with("openam_") { name.to_owned() } else { format!("{}{name}", self.prefix) }
    }
}

impl Default for Spelling {
    fn default() -> Self {
        Self::PLUGIN
    }
}

/// An option's value as a host hands it over: Mosquitto's options are all text, a TOML
/// section's keep their type. Each option accepts the forms that make sense for it ("30" or 30
/// for a number, "a b" or ["a", "b"] for a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// true or false.
    Flag(bool),
    /// A list of strings.
    List(Vec<String>),
}

impl OptionValue {
    /// The value as the problem part of a message shows it.
    fn shown(&self) -> String {
        match self {
            Self::Text(text) => format!("{text:?}"),
            Self::Integer(n) => n.to_string(),
            Self::Flag(flag) => flag.to_string(),
            Self::List(_) => "a list".to_owned(),
        }
    }

    /// Text, a number or a flag as text; `None` for a list.
    fn as_text(&self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text.trim().to_owned()),
            Self::Integer(n) => Some(n.to_string()),
            Self::Flag(flag) => Some(flag.to_string()),
            Self::List(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for OptionValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OptionValueVisitor)
    }
}

struct OptionValueVisitor;

impl<'de> Visitor<'de> for OptionValueVisitor {
    type Value = OptionValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("text, a number, true or false, or a list of strings")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<OptionValue, E> {
        Ok(OptionValue::Text(value.to_owned()))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<OptionValue, E> {
        Ok(OptionValue::Integer(value))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<OptionValue, E> {
        Ok(OptionValue::Flag(value))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OptionValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(OptionValue::List(items))
    }
}

/// Hands an [`OptionValue`] to serde as what it is.
#[derive(Debug)]
pub struct OptionValueDeserializer<E> {
    value: OptionValue,
    error: std::marker::PhantomData<E>,
}

impl<'de, E: de::Error> IntoDeserializer<'de, E> for OptionValue {
    type Deserializer = OptionValueDeserializer<E>;

    fn into_deserializer(self) -> Self::Deserializer {
        OptionValueDeserializer { value: self, error: std::marker::PhantomData }
    }
}

impl<'de, E: de::Error> Deserializer<'de> for OptionValueDeserializer<E> {
    type Error = E;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        match self.value {
            OptionValue::Text(text) => visitor.visit_string(text),
            OptionValue::Integer(n) => visitor.visit_i64(n),
            OptionValue::Flag(flag) => visitor.visit_bool(flag),
            OptionValue::List(items) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, E> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// What serde reports while mapping entries onto a struct, before it is spelled for the host.
#[derive(Debug)]
enum MappingError {
    Unknown { name: String, expected: &'static [&'static str] },
    Duplicate(&'static str),
    Other(String),
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for MappingError {}

impl de::Error for MappingError {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Self::Other(message.to_string())
    }

    fn unknown_field(name: &str, expected: &'static [&'static str]) -> Self {
        Self::Unknown { name: name.to_owned(), expected }
    }

    fn duplicate_field(name: &'static str) -> Self {
        Self::Duplicate(name)
    }
}

/// Maps `entries` onto `T` (a struct of `Option<OptionValue>` fields that refuses unknown
/// fields), spelling errors for the host; `also_known` are the host's other option names, for
/// the "did you mean" hint.
pub fn deserialize_options<T: DeserializeOwned>(
    entries: Vec<(String, OptionValue)>,
    spelling: &Spelling,
    also_known: &[&str],
) -> Result<T, ConfigError> {
    let map = de::value::MapDeserializer::<_, MappingError>::new(entries.into_iter());
    T::deserialize(map).map_err(|error| match error {
        MappingError::Unknown { name, expected } => ConfigError::Unknown {
            hint: suggest(&name, expected.iter().chain(also_known), spelling),
            key: spelling.of(&name),
        },
        MappingError::Duplicate(name) => ConfigError::Duplicate { key: spelling.of(name) },
        MappingError::Other(problem) => {
            ConfigError::Invalid { key: "configuration".into(), problem }
        }
    })
}

/// The option names (aliases included) a struct deserialized by [`deserialize_options`] knows,
/// so that a host can split its entries between the core and itself.
pub fn option_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names;
    impl<'de> Deserializer<'de> for Names {
        type Error = MappingError;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, MappingError> {
            Err(MappingError::Other("not a struct".into()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, MappingError> {
            Err(MappingError::Unknown { name: String::new(), expected: fields })
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Names) {
        Err(MappingError::Unknown { expected, .. }) => expected,
        _ => &[],
    }
}

/// The entries of Mosquitto's `(key, value)` option pairs that belong to this plugin
/// (`oauth_*`, gomozzie's `openam_*`), with the `oauth_` prefix taken off; other plugins' options
/// are left out.
pub fn plugin_entries<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, OptionValue)> {
    pairs
        .into_iter()
        .filter(|(key, _)| is_own_key(key))
        .map(|(key, value)| {
            let name = key.strip_prefix("oauth_").unwrap_or(key);
            (name.to_owned(), OptionValue::Text(value.to_owned()))
        })
        .collect()
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

/// How revalidation re-checks JWTs verified locally (`oauth_jwt_revocation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtRevocation {
    /// Against the keys only (refreshed JWKS): a JWT keeps its session until `exp` unless its
    /// key is withdrawn.
    #[default]
    Keys,
    /// Also by introspection at every revalidation, so a JWT revoked at the authorization
    /// server (ForgeRock AM, Keycloak answer for the JWTs they issue) loses its session within
    /// the revalidation interval. Logins are still verified locally, without a call.
    Introspect,
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

/// What introduces an issuer profile option: `issuers.<name>.<option>`.
const PROFILE_PREFIX: &str = "issuers.";

/// The name of the profile the options outside named profiles make, in `$SYS` and messages.
pub const DEFAULT_PROFILE: &str = "default";

/// Options that name one authorization server: the default profile's alone, never inherited
/// by named profiles.
const ENDPOINT_OPTIONS: &[&str] = &[
    "issuer",
    "jwks_url",
    "jwks_file",
    "introspection_url",
    "client_id",
    "client_secret",
    "client_secret_file",
];

/// What an issuer profile may set besides its server ([`ENDPOINT_OPTIONS`]): how its tokens
/// are read. These are inherited from outside the profiles when a profile leaves them out; the
/// rest (cache, timeouts, revalidation, `token_username`, certificate binding) is broker-wide.
const TOKEN_OPTIONS: &[&str] = &[
    "client_auth",
    "mode",
    "audience",
    "algorithms",
    "leeway",
    "scope_prefix",
    "required_scopes",
    "client_id_claim",
    "username_claim",
    "jwt_revocation",
];

/// The core's name of an option given under one of gomozzie's aliases.
fn canonical_name(name: &str) -> &str {
    match name {
        "openam_endpoint" => "introspection_url",
        "openam_client_id" => "client_id",
        "openam_client_secret" => "client_secret",
        other => other,
    }
}

/// Splits `issuers.<name>.<option>` entries off, grouped by profile in the order the profiles
/// are first named.
#[allow(clippy::type_complexity)]
fn split_profiles(
    entries: Vec<(String, OptionValue)>,
    spelling: &Spelling,
) -> Result<(Vec<(String, OptionValue)>, Vec<(String, Vec<(String, OptionValue)>)>), ConfigError> {
    let mut shared = Vec::new();
    let mut profiles: Vec<(String, Vec<(String, OptionValue)>)> = Vec::new();
    for (key, value) in entries {
        let Some(rest) = key.strip_prefix(PROFILE_PREFIX) else {
            shared.push((key, value));
            continue;
        };
        let Some((name, option)) = rest.split_once('.').filter(|(_, option)| !option.is_empty())
        else {
            return Err(ConfigError::invalid(
                &spelling.of(&key),
                format!("expected {} <value>", spelling.of("issuers.<name>.<option>")),
            ));
        };
        let valid_name = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name || name == DEFAULT_PROFILE {
            return Err(ConfigError::invalid(
                &spelling.of(&key),
                format!(
                    "a profile name is letters, digits, - and _ (it names $SYS topics), and not {DEFAULT_PROFILE:?}"
                ),
            ));
        }
        match profiles.iter_mut().find(|(known, _)| known == name) {
            Some((_, own)) => own.push((option.to_owned(), value)),
            None => profiles.push((name.to_owned(), vec![(option.to_owned(), value)])),
        }
    }
    if profiles.len() > usize::from(u8::MAX) {
        return Err(ConfigError::invalid(&spelling.of("issuers"), "at most 255 issuer profiles"));
    }
    Ok((shared, profiles))
}

/// One authorization server among several (`oauth_issuers.<name>.<option>`): its issuer, keys,
/// introspection endpoint and credentials, and how its tokens are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerProfile {
    /// The profile's name.
    pub name: String,
    /// Its configuration: the profile's options over the inherited ones.
    pub config: Config,
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
    /// PEM file with the only CA certificates trusted for HTTPS (default: system roots).
    pub ca_file: Option<PathBuf>,
    /// Disconnect clients when their token expires.
    pub disconnect_on_expiry: bool,
    /// Interval for re-checking live sessions' tokens (revocation); zero disables it.
    pub revalidate_interval: Duration,
    /// Most revalidation calls per second to the authorization server.
    pub revalidate_max_rps: u32,
    /// Revalidation calls in flight at once.
    pub revalidate_concurrency: usize,
    /// How revalidation re-checks JWTs verified locally.
    pub jwt_revocation: JwtRevocation,
    /// `oauth_require_certificate_binding`.
    pub certificate_binding: CertificateBinding,
    /// Issuer profiles (`oauth_issuers.<name>.<option>`), in the order they were first named.
    pub issuers: Vec<IssuerProfile>,
    /// How the host spells the options, for errors found after parsing (unreadable key files).
    pub spelling: Spelling,
}

/// The core's options as a host hands them over, before validation (names without the
/// plugin's `oauth_` prefix; gomozzie's names as aliases). No `Debug`: it holds the client
/// secret as given, before it becomes a redacted [`Secret`].
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    mode: Option<OptionValue>,
    #[serde(alias = "openam_endpoint")]
    introspection_url: Option<OptionValue>,
    #[serde(alias = "openam_client_id")]
    client_id: Option<OptionValue>,
    #[serde(alias = "openam_client_secret")]
    client_secret: Option<OptionValue>,
    client_secret_file: Option<OptionValue>,
    client_auth: Option<OptionValue>,
    issuer: Option<OptionValue>,
    jwks_url: Option<OptionValue>,
    jwks_file: Option<OptionValue>,
    audience: Option<OptionValue>,
    algorithms: Option<OptionValue>,
    leeway: Option<OptionValue>,
    scope_prefix: Option<OptionValue>,
    required_scopes: Option<OptionValue>,
    token_username: Option<OptionValue>,
    client_id_claim: Option<OptionValue>,
    username_claim: Option<OptionValue>,
    cache_ttl: Option<OptionValue>,
    cache_negative_ttl: Option<OptionValue>,
    cache_max_entries: Option<OptionValue>,
    http_timeout_ms: Option<OptionValue>,
    ca_file: Option<OptionValue>,
    disconnect_on_expiry: Option<OptionValue>,
    revalidate_interval: Option<OptionValue>,
    revalidate_max_rps: Option<OptionValue>,
    revalidate_concurrency: Option<OptionValue>,
    jwt_revocation: Option<OptionValue>,
    require_certificate_binding: Option<OptionValue>,
}

/// True for keys this crate owns among Mosquitto's options (`oauth_*` and gomozzie's
/// `openam_*`).
pub fn is_own_key(key: &str) -> bool {
    key.starts_with("oauth_") || key.starts_with("openam_")
}

/// Reads option values into types, naming the option as the host spells it in every error.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    spelling: Spelling,
    base_dir: &'a Path,
}

impl<'a> Reader<'a> {
    /// A reader for a host's `spelling`; relative paths are taken from `base_dir`.
    pub fn new(spelling: Spelling, base_dir: &'a Path) -> Self {
        Self { spelling, base_dir }
    }

    /// The option `name` as the host spells it.
    pub fn key(&self, name: &str) -> String {
        self.spelling.of(name)
    }

    /// Non-empty text.
    pub fn text(
        &self,
        name: &str,
        value: Option<&OptionValue>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        match value.as_text() {
            Some(text) if text.is_empty() => {
                Err(ConfigError::invalid(&self.key(name), "must not be empty"))
            }
            Some(text) => Ok(Some(text)),
            None => {
                Err(ConfigError::invalid(&self.key(name), "expected a single value, got a list"))
            }
        }
    }

    /// A whole number within `range`, `default` when absent.
    pub fn number(
        &self,
        name: &str,
        value: Option<&OptionValue>,
        default: u64,
        range: (u64, u64),
    ) -> Result<u64, ConfigError> {
        let Some(value) = value else { return Ok(default) };
        let number = match value {
            OptionValue::Integer(n) => u64::try_from(*n).ok(),
            OptionValue::Text(text) => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if (range.0..=range.1).contains(&n) => Ok(n),
            _ => Err(ConfigError::invalid(
                &self.key(name),
                format!(
                    "expected a whole number from {} to {}, got {}",
                    range.0,
                    range.1,
                    value.shown()
                ),
            )),
        }
    }

    /// true or false (also yes/no, on/off, 1/0 as text), `default` when absent.
    pub fn flag(
        &self,
        name: &str,
        value: Option<&OptionValue>,
        default: bool,
    ) -> Result<bool, ConfigError> {
        let Some(value) = value else { return Ok(default) };
        match value {
            OptionValue::Flag(flag) => Ok(*flag),
            OptionValue::Text(text) => match text.trim() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(self.not_a_flag(name, value)),
            },
            _ => Err(self.not_a_flag(name, value)),
        }
    }

    fn not_a_flag(&self, name: &str, value: &OptionValue) -> ConfigError {
        ConfigError::invalid(
            &self.key(name),
            format!("expected true or false, got {}", value.shown()),
        )
    }

    /// A list: given as a list, or as text separated by commas or spaces.
    pub fn list(
        &self,
        name: &str,
        value: Option<&OptionValue>,
    ) -> Result<Vec<String>, ConfigError> {
        match value {
            None => Ok(Vec::new()),
            Some(OptionValue::List(items)) => {
                Ok(items.iter().flat_map(|item| split_list(item)).collect())
            }
            Some(other) => match other.as_text() {
                Some(text) => Ok(split_list(&text)),
                None => Err(ConfigError::invalid(&self.key(name), "expected a list")),
            },
        }
    }

    /// An http(s) URL.
    pub fn url(
        &self,
        name: &str,
        value: Option<&OptionValue>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(text) = self.text(name, value)? else { return Ok(None) };
        validate_url(&self.key(name), &text, &self.spelling).map(Some)
    }

    /// A path, relative to the host's configuration directory unless absolute.
    pub fn path(
        &self,
        name: &str,
        value: Option<&OptionValue>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.text(name, value)?.map(|path| self.base_dir.join(path)))
    }
}

fn split_list(value: &str) -> Vec<String> {
    value.split([',', ' ', '\t']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn validate_url(key: &str, value: &str, spelling: &Spelling) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| ConfigError::invalid(key, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(key, "must be an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            key,
            format!(
                "must not carry credentials; use {} and {}",
                spelling.of("client_id"),
                spelling.of("client_secret")
            ),
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

fn parse_algorithms(key: &str, names: &[String]) -> Result<Vec<Algorithm>, ConfigError> {
    let mut algorithms = Vec::new();
    for name in names {
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

fn read_secret_file(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let content = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = content.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(ConfigError::invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(secret))
}

/// " (did you mean X?)" for a name within two edits of a known one (a name written with the
/// plugin's `oauth_` prefix where the host has none counts as its bare name).
fn suggest<'a>(
    name: &str,
    known: impl Iterator<Item = &'a &'a str>,
    spelling: &Spelling,
) -> String {
    let bare = name.strip_prefix("oauth_").unwrap_or(name);
    known
        .map(|known| (edit_distance(bare, known).min(edit_distance(name, known)), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| format!(" (did you mean {}?)", spelling.of(known)))
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
    /// Builds and validates the configuration from Mosquitto-style `(key, value)` pairs
    /// (`oauth_*` and `openam_*` keys; others belong to other plugins and are ignored). Every
    /// own key must be a core option: a host with options of its own splits them off first
    /// (see [`deserialize_options`]).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        Self::from_options(plugin_entries(pairs), Spelling::PLUGIN, Path::new(""), &[])
    }

    /// Builds and validates the configuration from a host's entries (option names without the
    /// plugin's prefix), naming options in errors as `spelling` does; relative paths are taken
    /// from `base_dir`; `also_known` are the host's own option names (for "did you mean").
    ///
    /// Options `issuers.<name>.<option>` make issuer profiles (see [`IssuerProfile`]).
    pub fn from_options(
        entries: Vec<(String, OptionValue)>,
        spelling: Spelling,
        base_dir: &Path,
        also_known: &[&str],
    ) -> Result<Self, ConfigError> {
        let (shared, profiles) = split_profiles(entries, &spelling)?;
        if profiles.is_empty() {
            return Self::from_own_options(shared, spelling, base_dir, also_known, true);
        }
        // The shared options without the default profile's endpoints: what every named
        // profile starts from.
        let inherited: Vec<(String, OptionValue)> = shared
            .iter()
            .filter(|(name, _)| !ENDPOINT_OPTIONS.contains(&canonical_name(name)))
            .cloned()
            .collect();
        let mut config =
            Self::from_own_options(shared, spelling.clone(), base_dir, also_known, false)?;
        for (name, own) in profiles {
            let profile_spelling = spelling.profile(&name);
            let takes = |option: &str| {
                let option = canonical_name(option);
                ENDPOINT_OPTIONS.contains(&option) || TOKEN_OPTIONS.contains(&option)
            };
            if let Some((option, _)) = own.iter().find(|(option, _)| !takes(option)) {
                return Err(ConfigError::invalid(
                    &profile_spelling.of(option),
                    format!(
                        "is not an issuer profile option; a profile takes {}, {}",
                        ENDPOINT_OPTIONS.join(", "),
                        TOKEN_OPTIONS.join(", ")
                    ),
                ));
            }
            if !own.iter().any(|(option, _)| option == "issuer") {
                return Err(ConfigError::Missing {
                    key: profile_spelling.of("issuer"),
                    reason: "JWTs are routed to a profile by their iss".into(),
                });
            }
            let mut merged: Vec<(String, OptionValue)> = inherited
                .iter()
                .filter(|(option, _)| {
                    !own.iter().any(|(mine, _)| canonical_name(mine) == canonical_name(option))
                })
                .cloned()
                .collect();
            merged.extend(own);
            let profile = Self::from_own_options(
                merged,
                profile_spelling.clone(),
                base_dir,
                also_known,
                true,
            )?;
            let clash = config
                .profiles()
                .find(|(_, other)| other.issuer.is_some() && other.issuer == profile.issuer);
            if let Some((other, _)) = clash {
                return Err(ConfigError::invalid(
                    &profile_spelling.of("issuer"),
                    format!(
                        "is the issuer of profile {:?} as well; JWTs are routed by issuer, so each profile needs its own",
                        other.unwrap_or(DEFAULT_PROFILE)
                    ),
                ));
            }
            config.issuers.push(IssuerProfile { name, config: profile });
        }
        Ok(config)
    }

    /// True when this configuration validates tokens itself (an introspection endpoint or
    /// keys): always without issuer profiles; with them, when the options outside the profiles
    /// make a default profile.
    pub fn validates_tokens(&self) -> bool {
        self.introspection.is_some() || self.keys.is_some()
    }

    /// Every issuer profile in the order opaque tokens try them: the default one (name `None`,
    /// the options outside the profiles) when it validates tokens, then the named ones.
    pub fn profiles(&self) -> impl Iterator<Item = (Option<&str>, &Config)> {
        self.validates_tokens().then_some((None, self)).into_iter().chain(
            self.issuers.iter().map(|profile| (Some(profile.name.as_str()), &profile.config)),
        )
    }

    /// One configuration from its own options; `needs_endpoints` is false for the options
    /// outside issuer profiles, which need no endpoint of their own then.
    fn from_own_options(
        entries: Vec<(String, OptionValue)>,
        spelling: Spelling,
        base_dir: &Path,
        also_known: &[&str],
        needs_endpoints: bool,
    ) -> Result<Self, ConfigError> {
        let given: Options = deserialize_options(entries, &spelling, also_known)?;
        let read = Reader::new(spelling.clone(), base_dir);
        let key = |name: &str| spelling.of(name);

        let mode = match read.text("mode", given.mode.as_ref())?.as_deref() {
            None | Some("auto") => Mode::Auto,
            Some("introspect") => Mode::Introspect,
            Some("jwt") => Mode::Jwt,
            Some(other) => {
                return Err(ConfigError::invalid(
                    &key("mode"),
                    format!("expected auto, introspect or jwt, got {other:?}"),
                ));
            }
        };
        let client_auth = match read.text("client_auth", given.client_auth.as_ref())?.as_deref() {
            None | Some("basic") => ClientAuth::Basic,
            Some("post") => ClientAuth::Post,
            Some(other) => {
                return Err(ConfigError::invalid(
                    &key("client_auth"),
                    format!("expected basic or post, got {other:?}"),
                ));
            }
        };

        let introspection = Self::introspection(&given, &read, client_auth)?;
        let issuer = read
            .url("issuer", given.issuer.as_ref())?
            .map(|url| url.trim_end_matches('/').to_owned());
        let keys = match (
            read.url("jwks_url", given.jwks_url.as_ref())?,
            read.path("jwks_file", given.jwks_file.as_ref())?,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: key("jwks_url"),
                    second: key("jwks_file"),
                });
            }
            (Some(url), None) => Some(KeySource::Url(url)),
            (None, Some(path)) => Some(KeySource::File(path)),
            (None, None) => issuer.clone().map(KeySource::Discovery),
        };

        let endpoints_given = introspection.is_some() || keys.is_some();
        match mode {
            _ if !needs_endpoints && !endpoints_given => {}
            Mode::Introspect if introspection.is_none() => {
                return Err(ConfigError::Missing {
                    key: key("introspection_url"),
                    reason: format!("{} introspect needs the introspection endpoint", key("mode")),
                });
            }
            Mode::Jwt if keys.is_none() => {
                return Err(ConfigError::Missing {
                    key: key("jwks_url"),
                    reason: format!(
                        "{} jwt needs keys: {}, {} or {} (discovery)",
                        key("mode"),
                        key("jwks_url"),
                        key("jwks_file"),
                        key("issuer")
                    ),
                });
            }
            Mode::Auto if introspection.is_none() && keys.is_none() => {
                return Err(ConfigError::Missing {
                    key: key("introspection_url"),
                    reason: format!(
                        "set an introspection endpoint or JWT keys ({}, {}, {})",
                        key("jwks_url"),
                        key("jwks_file"),
                        key("issuer")
                    ),
                });
            }
            _ => {}
        }

        let jwt_revocation = match read
            .text("jwt_revocation", given.jwt_revocation.as_ref())?
            .as_deref()
        {
            None | Some("keys") => JwtRevocation::Keys,
            Some("introspect") if !needs_endpoints && !endpoints_given => JwtRevocation::Introspect,
            Some("introspect") if introspection.is_none() => {
                return Err(ConfigError::Missing {
                    key: key("introspection_url"),
                    reason: format!(
                        "{} introspect needs the introspection endpoint",
                        key("jwt_revocation")
                    ),
                });
            }
            Some("introspect") => JwtRevocation::Introspect,
            Some(other) => {
                return Err(ConfigError::invalid(
                    &key("jwt_revocation"),
                    format!("expected keys or introspect, got {other:?}"),
                ));
            }
        };

        let certificate_binding = match read
            .text("require_certificate_binding", given.require_certificate_binding.as_ref())?
            .as_deref()
        {
            None => CertificateBinding::default(),
            Some(value) => CertificateBinding::parse(value).ok_or_else(|| {
                ConfigError::invalid(
                    &key("require_certificate_binding"),
                    format!("expected {}, got {value:?}", CertificateBinding::NAMES),
                )
            })?,
        };

        let algorithms = match read.list("algorithms", given.algorithms.as_ref())? {
            names if given.algorithms.is_some() => parse_algorithms(&key("algorithms"), &names)?,
            _ => DEFAULT_ALGORITHMS.to_vec(),
        };
        let scope_prefix = match read.text("scope_prefix", given.scope_prefix.as_ref()) {
            Ok(Some(value)) if !value.contains(char::is_whitespace) => value,
            Ok(None) => DEFAULT_SCOPE_PREFIX.to_owned(),
            _ => {
                return Err(ConfigError::invalid(
                    &key("scope_prefix"),
                    "must be a non-empty word without spaces",
                ));
            }
        };
        let seconds = |name: &str, value: &Option<OptionValue>, default: u64, range: (u64, u64)| {
            read.number(name, value.as_ref(), default, range).map(Duration::from_secs)
        };

        Ok(Self {
            mode,
            introspection,
            keys,
            issuer,
            audiences: read.list("audience", given.audience.as_ref())?,
            algorithms,
            leeway: seconds("leeway", &given.leeway, DEFAULT_LEEWAY_SECS, (0, MAX_LEEWAY_SECS))?,
            scope_prefix,
            required_scopes: read.list("required_scopes", given.required_scopes.as_ref())?,
            token_username: read.text("token_username", given.token_username.as_ref())?,
            client_id_claim: read.text("client_id_claim", given.client_id_claim.as_ref())?,
            username_claim: read.text("username_claim", given.username_claim.as_ref())?,
            cache: CacheSettings {
                ttl: seconds("cache_ttl", &given.cache_ttl, DEFAULT_CACHE_TTL_SECS, (0, 86_400))?,
                negative_ttl: seconds(
                    "cache_negative_ttl",
                    &given.cache_negative_ttl,
                    DEFAULT_CACHE_NEGATIVE_TTL_SECS,
                    (0, 3_600),
                )?,
                max_entries: read.number(
                    "cache_max_entries",
                    given.cache_max_entries.as_ref(),
                    DEFAULT_CACHE_MAX_ENTRIES,
                    (1, 100_000_000),
                )?,
            },
            http_timeout: Duration::from_millis(read.number(
                "http_timeout_ms",
                given.http_timeout_ms.as_ref(),
                DEFAULT_HTTP_TIMEOUT_MS,
                (1, MAX_HTTP_TIMEOUT_MS),
            )?),
            ca_file: read.path("ca_file", given.ca_file.as_ref())?,
            disconnect_on_expiry: read.flag(
                "disconnect_on_expiry",
                given.disconnect_on_expiry.as_ref(),
                true,
            )?,
            revalidate_interval: seconds(
                "revalidate_interval",
                &given.revalidate_interval,
                DEFAULT_REVALIDATE_INTERVAL_SECS,
                (0, 86_400),
            )?,
            revalidate_max_rps: u32::try_from(read.number(
                "revalidate_max_rps",
                given.revalidate_max_rps.as_ref(),
                DEFAULT_REVALIDATE_MAX_RPS,
                (1, 100_000),
            )?)
            .expect("at most 100 000"),
            revalidate_concurrency: usize::try_from(read.number(
                "revalidate_concurrency",
                given.revalidate_concurrency.as_ref(),
                DEFAULT_REVALIDATE_CONCURRENCY,
                (1, 64),
            )?)
            .expect("at most 64"),
            jwt_revocation,
            certificate_binding,
            issuers: Vec::new(),
            spelling,
        })
    }

    fn introspection(
        given: &Options,
        read: &Reader<'_>,
        client_auth: ClientAuth,
    ) -> Result<Option<IntrospectionSettings>, ConfigError> {
        let key = |name: &str| read.key(name);
        let secret = match (&given.client_secret, &given.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    first: key("client_secret"),
                    second: key("client_secret_file"),
                });
            }
            (Some(value), None) => {
                read.text("client_secret", Some(value))?.map(|secret| Secret::new(&secret))
            }
            (None, Some(value)) => match read.path("client_secret_file", Some(value))? {
                Some(path) => Some(read_secret_file(&key("client_secret_file"), &path)?),
                None => None,
            },
            (None, None) => None,
        };
        let client_id = read.text("client_id", given.client_id.as_ref())?;
        let Some(url) = read.url("introspection_url", given.introspection_url.as_ref())? else {
            return Ok(None);
        };
        let client_id = client_id.ok_or_else(|| ConfigError::Missing {
            key: key("client_id"),
            reason: "the introspection endpoint needs our client credentials".into(),
        })?;
        let client_secret = secret.ok_or_else(|| ConfigError::Missing {
            key: key("client_secret"),
            reason: format!(
                "the introspection endpoint needs our client credentials (or use {})",
                key("client_secret_file")
            ),
        })?;
        Ok(Some(IntrospectionSettings { url, client_id, client_secret, client_auth }))
    }

    /// The start-up warning about identities a token holder picks itself: `%c` and `%u` in a
    /// token's grants stand for the client id and username the client presents, unless
    /// `oauth_client_id_claim` binds the client id and `oauth_username_claim` the username to
    /// the token (with `oauth_token_username` every token login has the marker as username).
    pub fn unbound_identity_warning(&self) -> Option<String> {
        let mut unbound = Vec::new();
        // With issuer profiles, each of them whose tokens leave the identity to the client.
        if self.profiles().any(|(_, profile)| profile.client_id_claim.is_none()) {
            unbound.push("%c stands for any client id the client picks (set oauth_client_id_claim, e.g. to sub, to bind it)");
        }
        if self.profiles().any(|(_, profile)| profile.username_claim.is_none()) {
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
