//! The broker's TOML configuration.
//!
//! `[auth]` takes the core's options, named as the Mosquitto plugin names them without its
//! `oauth_` prefix, and read by the core's own deserializer: defaults, checks and messages are
//! the plugin's, with options spelled `auth.<name>`. Everything else (`[[listener]]`, `[users]`,
//! `[anonymous]`, `[log]`, `[metrics]`, `auth.allow_anonymous`) belongs to the fallback broker.
//! Every error names the key it is about.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oauth_core::config::{OptionValue, Spelling};
use oauth_core::topic::Filter;
use oauth_core::{CertificateBinding, Config as AuthConfig};
use toml::{Table, Value};

/// Default `metrics.sys_interval` (the plugin's `oauth_stats_interval`).
pub const DEFAULT_SYS_INTERVAL_SECS: u64 = 10;

/// A configuration problem: `option <key>: <problem>` and friends, like the plugin's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    fn invalid(key: &str, problem: impl std::fmt::Display) -> Self {
        Self { key: key.to_owned(), message: format!("option {key}: {problem}") }
    }

    fn unknown(key: &str) -> Self {
        Self { key: key.to_owned(), message: format!("unknown option {key}") }
    }

    fn missing(key: &str, reason: &str) -> Self {
        Self { key: key.to_owned(), message: format!("option {key} is required: {reason}") }
    }

    /// A core error: the core already spells options as `auth.<name>`.
    fn from_core(error: &oauth_core::ConfigError) -> Self {
        Self { key: error.key().to_owned(), message: error.to_string() }
    }

    /// The key the error is about (`auth.leeway`, `listener[1].bind`, ...).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Topic rights given by configuration (users-file users, anonymous clients).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantLists {
    /// Filters the client may subscribe inside and receive from.
    pub read: Vec<String>,
    /// Filters the client may publish (and put its will) to.
    pub write: Vec<String>,
}

impl GrantLists {
    /// As the core's grants (`%c`/`%u` resolved per client later).
    pub fn to_grants(&self) -> oauth_core::Grants {
        let scopes: Vec<String> = self
            .read
            .iter()
            .map(|f| format!("read:{f}"))
            .chain(self.write.iter().map(|f| format!("write:{f}")))
            .collect();
        oauth_core::Grants::from_scopes(scopes.iter().map(String::as_str), "")
    }
}

/// Grants of one users-file user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrants {
    /// The username, as in the users file.
    pub username: String,
    /// The rights.
    pub grants: GrantLists,
}

/// `[users]`: non-token logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersConfig {
    /// A file in `mosquitto_passwd` format; optional when a listener requires certificates
    /// and the grants are only for certificate identities.
    pub file: Option<PathBuf>,
    /// Per-user rights (users-file users and certificate identities); users without an entry
    /// may connect but do nothing.
    pub grants: Vec<UserGrants>,
}

/// Which part of a client certificate names a certificate login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateIdentity {
    /// The subject's common name (Mosquitto's `use_identity_as_username`).
    CommonName,
    /// The whole subject, as `CN=..., O=...` (Mosquitto's `use_subject_as_username`, in the
    /// order the certificate lists the names).
    Subject,
}

/// Client certificates a listener requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificates {
    /// PEM certificates of the CAs that sign client certificates.
    pub ca: PathBuf,
    /// The identity of a certificate login.
    pub identity: CertificateIdentity,
}

/// Transport of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain MQTT over TCP.
    Tcp,
    /// MQTT over TLS.
    Tls,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl Transport {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the listener needs a certificate and key.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }
}

/// One `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Transport.
    pub transport: Transport,
    /// Address and port to bind.
    pub bind: SocketAddr,
    /// PEM certificate chain (TLS and WSS).
    pub cert: Option<PathBuf>,
    /// PEM private key (TLS and WSS).
    pub key: Option<PathBuf>,
    /// Largest MQTT packet accepted, in bytes.
    pub max_packet_size: u32,
    /// Topic aliases an MQTT 5 client may set (CONNACK Topic Alias Maximum), and the most the
    /// broker uses towards a client; Mosquitto's `max_topic_alias`.
    pub max_topic_aliases: u16,
    /// Longest keep alive granted: an MQTT 5 client asking for more gets this in CONNACK
    /// (Server Keep Alive), an MQTT 3.1.1 client is refused; Mosquitto's `max_keepalive`.
    pub max_keepalive: u16,
    /// `require_certificate = true` (with `ca`): the TLS handshake needs a client certificate
    /// signed by `ca`, and a CONNECT without password is a certificate login.
    pub client_certificates: Option<ClientCertificates>,
}

/// Default `max_topic_aliases`: Mosquitto's `max_topic_alias` default.
pub const DEFAULT_MAX_TOPIC_ALIASES: u16 = 10;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Seconds between `$SYS/broker/oauth/...` publications; zero disables them.
    pub sys_interval: Duration,
}

/// `[storage]`: sessions and retained messages on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Directory of the sled databases (`sessions/`, `retained/`).
    pub dir: PathBuf,
}

/// `[cluster]`: this node's place in an rmqtt raft cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id, one of `nodes`.
    pub node_id: u64,
    /// Every node of the cluster, this one included, in the order written.
    pub nodes: Vec<ClusterNode>,
}

/// One node of `[cluster]`: its id and the two addresses the other nodes reach it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its id (1 or more, unique).
    pub id: u64,
    /// `host:port` of its gRPC service (forwarded messages, kicks, retained messages).
    pub grpc: String,
    /// `host:port` of its raft service (the replicated routing table).
    pub raft: String,
}

impl ClusterConfig {
    /// The node that starts the cluster when none is running: the lowest id. Every node
    /// names the same one, so nodes started together never elect two leaders.
    pub fn founder(&self) -> u64 {
        self.nodes.iter().map(|node| node.id).min().unwrap_or(self.node_id)
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// The core's configuration, built from `[auth]`.
    pub auth: AuthConfig,
    /// Clients without credentials may connect (with the `[anonymous]` grants).
    pub allow_anonymous: bool,
    /// Grants of anonymous clients.
    pub anonymous: GrantLists,
    /// Users file and grants, if any.
    pub users: Option<UsersConfig>,
    /// Listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Logging.
    pub log: LogConfig,
    /// Counters.
    pub metrics: MetricsConfig,
    /// Durable sessions and retained messages kept across restarts; in memory when `None`.
    pub storage: Option<StorageConfig>,
    /// Raft cluster membership; a single broker when `None`.
    pub cluster: Option<ClusterConfig>,
}

/// A table being read: remembers which keys were used so leftovers are reported.
struct Section<'a> {
    path: String,
    table: &'a Table,
    used: BTreeSet<&'a str>,
}

impl<'a> Section<'a> {
    fn new(path: impl Into<String>, table: &'a Table) -> Self {
        Self { path: path.into(), table, used: BTreeSet::new() }
    }

    fn key(&self, name: &str) -> String {
        if self.path.is_empty() { name.to_owned() } else { format!("{}.{name}", self.path) }
    }

    fn get(&mut self, name: &'a str) -> Option<&'a Value> {
        let value = self.table.get(name)?;
        self.used.insert(name);
        Some(value)
    }

    fn string(&mut self, name: &'a str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => {
                Err(ConfigError::invalid(&self.key(name), "must not be empty"))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ConfigError::invalid(
                &self.key(name),
                format!("expected a string, got {}", other.type_str()),
            )),
        }
    }

    fn boolean(&mut self, name: &'a str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(ConfigError::invalid(
                &self.key(name),
                format!("expected true or false, got {}", other.type_str()),
            )),
        }
    }

    fn number(&mut self, name: &'a str, default: u64, max: u64) -> Result<u64, ConfigError> {
        let problem = |got: String| format!("expected a whole number from 0 to {max}, got {got}");
        match self.get(name) {
            None => Ok(default),
            Some(Value::Integer(n)) => u64::try_from(*n)
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ConfigError::invalid(&self.key(name), problem(n.to_string()))),
            Some(other) => {
                Err(ConfigError::invalid(&self.key(name), problem(other.type_str().to_owned())))
            }
        }
    }

    fn filters(&mut self, name: &'a str) -> Result<Vec<String>, ConfigError> {
        let key = self.key(name);
        let Some(value) = self.get(name) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else {
            return Err(ConfigError::invalid(&key, "expected a list of topic filters"));
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let item_key = format!("{key}[{index}]");
                let Value::String(text) = item else {
                    return Err(ConfigError::invalid(&item_key, "expected a topic filter string"));
                };
                Filter::parse(text).map_err(|problem| {
                    ConfigError::invalid(&item_key, format!("{text:?}: {problem}"))
                })?;
                Ok(text.clone())
            })
            .collect()
    }

    fn path(&mut self, name: &'a str, base: &Path) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(name)?.map(|p| base.join(p)))
    }

    fn grants(&mut self) -> Result<GrantLists, ConfigError> {
        Ok(GrantLists { read: self.filters("read")?, write: self.filters("write")? })
    }

    /// Reports the first key that was not read.
    fn finish(self) -> Result<(), ConfigError> {
        match self.table.keys().find(|k| !self.used.contains(k.as_str())) {
            Some(extra) => Err(ConfigError::unknown(&self.key(extra))),
            None => Ok(()),
        }
    }
}

/// `[auth]` keys the fallback broker handles itself instead of passing them to the core.
const AUTH_OWN_KEYS: &[&str] = &["allow_anonymous", "auth_method"];

/// How the core spells `[auth]` options in its messages.
const AUTH_SPELLING: Spelling = Spelling::section("auth.");

impl BrokerConfig {
    /// Reads and validates a configuration file. Relative paths in it are relative to the
    /// file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: String::new(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base)
    }

    /// Parses and validates configuration text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(1, |span| text[..span.start].matches('\n').count() + 1);
            ConfigError {
                key: String::new(),
                message: format!("not valid TOML (line {line}): {}", e.message().trim_end()),
            }
        })?;
        let mut root = Section::new("", &table);

        let auth_table = sub_table(&mut root, "auth")?;
        let empty = Table::new();
        let (auth, allow_anonymous) = parse_auth(auth_table.unwrap_or(&empty), base)?;

        let anonymous = match sub_table(&mut root, "anonymous")? {
            Some(table) => {
                let mut section = Section::new("anonymous", table);
                let grants = section.grants()?;
                section.finish()?;
                grants
            }
            None => GrantLists::default(),
        };

        let listeners = parse_listeners(&mut root, base)?;
        let certificate_logins = listeners.iter().any(|l| l.client_certificates.is_some());

        let users = match sub_table(&mut root, "users")? {
            Some(table) => Some(parse_users(table, base, certificate_logins)?),
            None => None,
        };

        let log = match sub_table(&mut root, "log")? {
            Some(table) => parse_log(table)?,
            None => LogConfig { level: "info".to_owned(), format: LogFormat::Text },
        };

        let metrics = match sub_table(&mut root, "metrics")? {
            Some(table) => {
                let mut section = Section::new("metrics", table);
                let secs = section.number("sys_interval", DEFAULT_SYS_INTERVAL_SECS, 86_400)?;
                section.finish()?;
                MetricsConfig { sys_interval: Duration::from_secs(secs) }
            }
            None => MetricsConfig { sys_interval: Duration::from_secs(DEFAULT_SYS_INTERVAL_SECS) },
        };
        let storage = match sub_table(&mut root, "storage")? {
            Some(table) => Some(parse_storage(table, base)?),
            None => None,
        };
        let cluster = match sub_table(&mut root, "cluster")? {
            Some(table) => Some(parse_cluster(table)?),
            None => None,
        };
        root.finish()?;
        if cluster.is_some() && storage.is_some() {
            return Err(ConfigError::invalid(
                "cluster",
                "cannot be combined with [storage] yet: a node restarting from its session \
                 store would bring back sessions the cluster has handed to other nodes since",
            ));
        }

        if let Some(file) = users.as_ref().and_then(|users| users.file.as_ref())
            && auth.token_username.is_none()
        {
            log::warn!(
                "[users] is configured without auth.token_username: logins with a users-file \
                 username stay local, but any other login's password (a mistyped username \
                 included) is sent to the authorization server as a token; set \
                 auth.token_username (e.g. \"oauth2\") to keep every password local ({})",
                file.display()
            );
        }

        Ok(Self {
            auth,
            allow_anonymous,
            anonymous,
            users,
            listeners,
            log,
            metrics,
            storage,
            cluster,
        })
    }

    /// A one-line description for the startup log (no secrets).
    pub fn describe(&self) -> String {
        let mut parts = oauth_core::report::validation_setup(&self.auth);
        if let Some(file) = self.users.as_ref().and_then(|users| users.file.as_ref()) {
            parts.push(format!("users file {}", file.display()));
        }
        let certificate_listeners =
            self.listeners.iter().filter(|l| l.client_certificates.is_some()).count();
        if certificate_listeners > 0 {
            parts.push(format!("certificate logins on {certificate_listeners} listener(s)"));
        }
        parts.push(format!(
            "anonymous {}",
            if self.allow_anonymous { "allowed" } else { "refused" }
        ));
        match &self.storage {
            Some(storage) => parts.push(format!("sessions stored in {}", storage.dir.display())),
            None => parts.push("sessions in memory".to_owned()),
        }
        if let Some(cluster) = &self.cluster {
            parts.push(format!(
                "cluster node {} of {}",
                cluster.node_id,
                cluster.nodes.iter().map(|node| node.id.to_string()).collect::<Vec<_>>().join(",")
            ));
        }
        match self.auth.revalidate_interval.as_secs() {
            0 => parts.push("no revalidation".to_owned()),
            n => parts.push(format!("revalidation every {n} s")),
        }
        parts.join(", ")
    }
}

fn sub_table<'a>(root: &mut Section<'a>, name: &'a str) -> Result<Option<&'a Table>, ConfigError> {
    match root.get(name) {
        None => Ok(None),
        Some(Value::Table(table)) => Ok(Some(table)),
        Some(_) => Err(ConfigError::invalid(name, "expected a table ([section])")),
    }
}

/// `[auth]` → the core's configuration, plus the broker's own `allow_anonymous`.
fn parse_auth(table: &Table, base: &Path) -> Result<(AuthConfig, bool), ConfigError> {
    let mut section = Section::new("auth", table);
    let allow_anonymous = section.boolean("allow_anonymous", false)?;
    if table.contains_key("auth_method") {
        log::warn!(
            "auth.auth_method: the fallback broker has no MQTT 5 enhanced authentication \
             (CONNECTs with an Authentication Method get CONNACK 0x8C); tokens go in the password"
        );
    }
    let mut entries = Vec::new();
    for (name, value) in table.iter().filter(|(name, _)| !AUTH_OWN_KEYS.contains(&name.as_str())) {
        match value {
            // `[auth.issuers.<name>]` tables (or dotted keys `issuers.<name>.<option>`): issuer
            // profiles, handed to the core as `issuers.<name>.<option>`.
            Value::Table(profiles) if name == "issuers" => {
                for (profile, options) in profiles {
                    let Value::Table(options) = options else {
                        return Err(ConfigError::invalid(
                            &format!("auth.issuers.{profile}"),
                            "expected a table ([auth.issuers.<name>])",
                        ));
                    };
                    for (option, value) in options {
                        let entry = format!("issuers.{profile}.{option}");
                        let value = option_value(&format!("auth.{entry}"), value)?;
                        entries.push((entry, value));
                    }
                }
            }
            _ if name == "issuers" => {
                return Err(ConfigError::invalid(
                    "auth.issuers",
                    "expected tables ([auth.issuers.<name>])",
                ));
            }
            value => entries.push((name.clone(), option_value(&format!("auth.{name}"), value)?)),
        }
    }
    let auth = AuthConfig::from_options(entries, AUTH_SPELLING, base, AUTH_OWN_KEYS)
        .map_err(|e| ConfigError::from_core(&e))?;
    if auth.certificate_binding == CertificateBinding::Required {
        return Err(ConfigError::invalid(
            "auth.require_certificate_binding",
            "required cannot be enforced by this broker: rmqtt 0.24 hands it a client \
             certificate's CN, subject and serial but not the certificate, so no token can be \
             proven bound to it; use when-present (certificate-bound tokens are refused) or off",
        ));
    }
    Ok((auth, allow_anonymous))
}

/// A TOML value of `[auth]` as the core's option value; `key` names it in errors.
fn option_value(key: &str, value: &Value) -> Result<OptionValue, ConfigError> {
    match value {
        Value::String(text) => Ok(OptionValue::Text(text.clone())),
        Value::Integer(n) => Ok(OptionValue::Integer(*n)),
        Value::Boolean(flag) => Ok(OptionValue::Flag(*flag)),
        Value::Array(items) => Ok(OptionValue::List(
            items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| ConfigError::invalid(key, "expected a list of strings"))?,
        )),
        other => Err(ConfigError::invalid(
            key,
            format!(
                "expected a string, number, true or false, or a list of strings, got {}",
                other.type_str()
            ),
        )),
    }
}

fn parse_storage(table: &Table, base: &Path) -> Result<StorageConfig, ConfigError> {
    let mut section = Section::new("storage", table);
    match section.string("type")?.as_deref() {
        None | Some("sled") => {}
        Some(other) => {
            return Err(ConfigError::invalid(
                "storage.type",
                format!("expected \"sled\" (the only engine built in), got {other:?}"),
            ));
        }
    }
    let dir = section.path("dir", base)?.ok_or_else(|| {
        ConfigError::missing("storage.dir", "[storage] keeps its databases in this directory")
    })?;
    section.finish()?;
    Ok(StorageConfig { dir })
}

fn parse_cluster(table: &Table) -> Result<ClusterConfig, ConfigError> {
    let mut section = Section::new("cluster", table);
    if section.get("node_id").is_none() {
        return Err(ConfigError::missing(
            "cluster.node_id",
            "this node's id, one of cluster.nodes",
        ));
    }
    let node_id = section.number("node_id", 0, u64::from(u32::MAX))?;
    let items = match section.get("nodes") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => {
            return Err(ConfigError::invalid(
                "cluster.nodes",
                "expected a list of { id, grpc, raft } tables, one per node",
            ));
        }
        None => {
            return Err(ConfigError::missing(
                "cluster.nodes",
                "every node of the cluster, this one included: { id, grpc, raft }",
            ));
        }
    };
    let mut nodes: Vec<ClusterNode> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = format!("cluster.nodes[{index}]");
        let Value::Table(entry) = item else {
            return Err(ConfigError::invalid(&path, "expected a table { id, grpc, raft }"));
        };
        let mut node = Section::new(path.clone(), entry);
        let id = node.number("id", 0, u64::from(u32::MAX))?;
        if id == 0 {
            return Err(ConfigError::invalid(&format!("{path}.id"), "expected a number from 1"));
        }
        if nodes.iter().any(|other| other.id == id) {
            return Err(ConfigError::invalid(&format!("{path}.id"), format!("{id} is used twice")));
        }
        let mut address = |name: &'static str| -> Result<String, ConfigError> {
            let key = format!("{path}.{name}");
            let text = node.string(name)?.ok_or_else(|| {
                ConfigError::missing(&key, "host:port the other nodes reach this node on")
            })?;
            let valid = text
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(ConfigError::invalid(
                    &key,
                    format!("expected host:port, got {text:?}"),
                ));
            }
            if nodes.iter().any(|other| other.grpc == text || other.raft == text) {
                return Err(ConfigError::invalid(&key, format!("{text} is used twice")));
            }
            Ok(text)
        };
        let grpc = address("grpc")?;
        let raft = address("raft")?;
        if grpc == raft {
            return Err(ConfigError::invalid(
                &format!("{path}.raft"),
                format!("{raft} is also the node's grpc address"),
            ));
        }
        node.finish()?;
        nodes.push(ClusterNode { id, grpc, raft });
    }
    if !nodes.iter().any(|node| node.id == node_id) {
        return Err(ConfigError::invalid(
            "cluster.node_id",
            format!("{node_id} is not the id of any of cluster.nodes"),
        ));
    }
    section.finish()?;
    Ok(ClusterConfig { node_id, nodes })
}

fn parse_users(
    table: &Table,
    base: &Path,
    certificate_logins: bool,
) -> Result<UsersConfig, ConfigError> {
    let mut section = Section::new("users", table);
    let file = section.path("file", base)?;
    if file.is_none() && !certificate_logins {
        return Err(ConfigError::missing(
            "users.file",
            "[users] needs a mosquitto_passwd file unless a listener requires certificates",
        ));
    }
    let mut grants: Vec<UserGrants> = Vec::new();
    match section.get("grants") {
        None => {}
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let path = format!("users.grants[{index}]");
                let Value::Table(entry) = item else {
                    return Err(ConfigError::invalid(&path, "expected a table ([[users.grants]])"));
                };
                let mut entry = Section::new(path.clone(), entry);
                let username = entry.string("username")?.ok_or_else(|| {
                    ConfigError::missing(&format!("{path}.username"), "each grant names its user")
                })?;
                if grants.iter().any(|g| g.username == username) {
                    return Err(ConfigError::invalid(
                        &format!("{path}.username"),
                        format!("{username:?} already has grants"),
                    ));
                }
                let lists = entry.grants()?;
                entry.finish()?;
                grants.push(UserGrants { username, grants: lists });
            }
        }
        Some(_) => {
            return Err(ConfigError::invalid("users.grants", "expected [[users.grants]] tables"));
        }
    }
    section.finish()?;
    if let Some(file) = &file {
        let users = crate::passwd::UsersFile::load(file)
            .map_err(|problem| ConfigError::invalid("users.file", problem))?;
        // With certificate logins, a name may be a certificate identity instead.
        for grant in
            grants.iter().filter(|grant| !certificate_logins && !users.contains(&grant.username))
        {
            log::warn!("users.grants names {:?}, who is not in {}", grant.username, file.display());
        }
    }
    Ok(UsersConfig { file, grants })
}

fn parse_listeners(
    root: &mut Section<'_>,
    base: &Path,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    let items = match root.get("listener") {
        None => {
            return Err(ConfigError::missing(
                "listener",
                "the broker needs at least one [[listener]]",
            ));
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => return Err(ConfigError::invalid("listener", "expected [[listener]] tables")),
    };
    let mut listeners: Vec<ListenerConfig> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let path = format!("listener[{index}]");
        let Value::Table(table) = item else {
            return Err(ConfigError::invalid(&path, "expected a table ([[listener]])"));
        };
        let mut section = Section::new(path.clone(), table);
        let transport = match section.string("type")?.as_deref() {
            None | Some("tcp") => Transport::Tcp,
            Some("tls") => Transport::Tls,
            Some("ws") => Transport::Ws,
            Some("wss") => Transport::Wss,
            Some(other) => {
                return Err(ConfigError::invalid(
                    &format!("{path}.type"),
                    format!("expected tcp, tls, ws or wss, got {other:?}"),
                ));
            }
        };
        let bind_key = format!("{path}.bind");
        let bind = section.string("bind")?.ok_or_else(|| {
            ConfigError::missing(&bind_key, "an address and port, e.g. \"0.0.0.0:1883\"")
        })?;
        let bind: SocketAddr = bind.parse().map_err(|_| {
            ConfigError::invalid(
                &bind_key,
                format!("{bind:?} is not an address:port like 0.0.0.0:1883"),
            )
        })?;
        if let Some(other) = listeners.iter().position(|l| l.bind == bind && bind.port() != 0) {
            return Err(ConfigError::invalid(
                &bind_key,
                format!("{bind} is already used by listener[{other}]"),
            ));
        }
        let cert = section.path("cert", base)?;
        let key = section.path("key", base)?;
        let max_packet_size = section.number("max_packet_size", 1024 * 1024, 268_435_455)?;
        let max_topic_aliases =
            section.number("max_topic_aliases", DEFAULT_MAX_TOPIC_ALIASES.into(), 65_535)?;
        let max_keepalive = section.number("max_keepalive", 65_535, 65_535)?;
        let client_certificates = parse_client_certificates(&mut section, &path, base, transport)?;
        if max_keepalive == 0 {
            return Err(ConfigError::invalid(
                &format!("{path}.max_keepalive"),
                "expected a whole number of seconds from 1 to 65535, got 0",
            ));
        }
        section.finish()?;
        if transport.is_tls() {
            for (name, file) in [("cert", &cert), ("key", &key)] {
                let key_name = format!("{path}.{name}");
                let Some(file) = file else {
                    return Err(ConfigError::missing(
                        &key_name,
                        "tls and wss listeners need a PEM certificate and key",
                    ));
                };
                std::fs::File::open(file).map_err(|e| {
                    ConfigError::invalid(&key_name, format!("cannot read {}: {e}", file.display()))
                })?;
            }
        } else if cert.is_some() || key.is_some() {
            return Err(ConfigError::invalid(
                &format!("{path}.{}", if cert.is_some() { "cert" } else { "key" }),
                format!(
                    "only tls and wss listeners use certificates, this one is {}",
                    transport.as_str()
                ),
            ));
        }
        listeners.push(ListenerConfig {
            transport,
            bind,
            cert,
            key,
            max_packet_size: u32::try_from(max_packet_size).unwrap_or(u32::MAX),
            max_topic_aliases: u16::try_from(max_topic_aliases).unwrap_or(u16::MAX),
            max_keepalive: u16::try_from(max_keepalive).unwrap_or(u16::MAX),
            client_certificates,
        });
    }
    Ok(listeners)
}

/// `require_certificate`, `ca` and `certificate_identity` of listener `path`.
fn parse_client_certificates(
    section: &mut Section<'_>,
    path: &str,
    base: &Path,
    transport: Transport,
) -> Result<Option<ClientCertificates>, ConfigError> {
    let required = section.boolean("require_certificate", false)?;
    let ca = section.path("ca", base)?;
    let identity = section.string("certificate_identity")?;
    if !required {
        let unused = if ca.is_some() {
            Some("ca")
        } else {
            identity.as_ref().map(|_| "certificate_identity")
        };
        return match unused {
            Some(name) => Err(ConfigError::invalid(
                &format!("{path}.{name}"),
                "only used with require_certificate = true",
            )),
            None => Ok(None),
        };
    }
    if !transport.is_tls() {
        return Err(ConfigError::invalid(
            &format!("{path}.require_certificate"),
            format!(
                "only tls and wss listeners take client certificates, this one is {}",
                transport.as_str()
            ),
        ));
    }
    let identity = match identity.as_deref() {
        None | Some("common_name") => CertificateIdentity::CommonName,
        Some("subject") => CertificateIdentity::Subject,
        Some(other) => {
            return Err(ConfigError::invalid(
                &format!("{path}.certificate_identity"),
                format!("expected common_name or subject, got {other:?}"),
            ));
        }
    };
    let ca_key = format!("{path}.ca");
    let ca = ca.ok_or_else(|| {
        ConfigError::missing(&ca_key, "require_certificate needs the PEM certificates of the CAs that sign client certificates")
    })?;
    std::fs::File::open(&ca)
        .map_err(|e| ConfigError::invalid(&ca_key, format!("cannot read {}: {e}", ca.display())))?;
    Ok(Some(ClientCertificates { ca, identity }))
}

fn parse_log(table: &Table) -> Result<LogConfig, ConfigError> {
    let mut section = Section::new("log", table);
    let level = section.string("level")?.unwrap_or_else(|| "info".to_owned());
    if !matches!(level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
        return Err(ConfigError::invalid(
            "log.level",
            format!("expected error, warn, info, debug or trace, got {level:?}"),
        ));
    }
    let format = match section.string("format")?.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(ConfigError::invalid(
                "log.format",
                format!("expected text or json, got {other:?}"),
            ));
        }
    };
    section.finish()?;
    Ok(LogConfig { level, format })
}

/// The commented default configuration printed by `fallback-broker generate-config`.
pub const DEFAULT_CONFIG: &str = r##"# fallback-broker configuration (TOML).
# Relative paths are relative to this file's directory.

[auth]
# The Mosquitto plugin's options, without the "oauth_" prefix (see the README's option table):
# mode, introspection_url, client_id, client_secret, client_secret_file, client_auth, issuer,
# jwks_url, jwks_file, audience, algorithms, leeway, scope_prefix, required_scopes,
# token_username, client_id_claim, username_claim, cache_ttl, cache_negative_ttl,
# cache_max_entries, http_timeout_ms, ca_file, revalidate_interval, revalidate_max_rps,
# revalidate_concurrency, jwt_revocation, require_certificate_binding, disconnect_on_expiry.
# Lists may be TOML arrays or space-separated. (auth_method: MQTT 5 enhanced authentication is
# not available in the fallback broker; log_dest and stats_interval are [log] and [metrics];
# login_wait_budget_ms is Mosquitto's alone: here no login waits on another.)
introspection_url = "https://am.example.com/am/oauth2/realms/root/realms/edge/introspect"
client_id = "mqtt-broker"
client_secret = "change-me"            # or: client_secret_file = "oauth-client-secret"
# issuer = "https://idp.example.com/realms/iot"
# audience = ["urn:mqtt:broker"]
# Devices log in with this username and the token as password; other usernames are users-file
# users and never reach the authorization server.
token_username = "oauth2"
# cache_ttl = 300

# Seconds between re-checks of the connected clients' tokens (bypassing the cache); a token
# found no longer valid (revoked) disconnects its clients. 0 = off.
# revalidate_interval = 60
# A round is spread over the interval and never sends more re-checks a second than this.
# revalidate_max_rps = 100
# revalidate_concurrency = 4
# JWTs are re-checked against the keys only; "introspect" also asks the introspection endpoint
# (logins stay local), so a JWT revoked at the authorization server loses its session.
# jwt_revocation = "keys"
# Clients are disconnected when their token expires.
# disconnect_on_expiry = true
# Tokens bound to a TLS client certificate (RFC 8705, cnf x5t#S256) are refused: this broker
# cannot see the certificate itself to prove the binding. "off" uses them as bearer tokens.
# require_certificate_binding = "when-present"

# Fallback-broker only: clients without username and password. When true they get the
# [anonymous] grants.
allow_anonymous = false

# Several issuers: one table per authorization server, with its own issuer, keys,
# introspection endpoint and credentials, audience, scope_prefix and claim options (the options
# above that are not about one server are inherited). JWTs go to the profile their iss names.
# [auth.issuers.cloud]
# issuer = "https://idp.example.com/realms/iot"
# jwks_url = "https://idp.example.com/realms/iot/protocol/openid-connect/certs"

# Durable sessions (clean session / clean start false), their subscriptions and queued QoS 1/2
# messages, and retained messages survive a restart in sled databases in this directory
# (without [storage] they are kept in memory). Restored sessions deliver nothing until their
# client logs in again with a valid token.
# [storage]
# dir = "/var/lib/fallback-broker"

# A cluster of brokers on rmqtt's raft (the same file on every node but node_id): clients may
# connect to any node; messages, session takeovers and kicks cross nodes. The grpc and raft
# ports carry no authentication: keep them on a private network. Cannot be combined with
# [storage] yet. The node with the lowest id starts the cluster when none is running.
# [cluster]
# node_id = 1
# nodes = [
#     { id = 1, grpc = "10.0.0.1:5363", raft = "10.0.0.1:6003" },
#     { id = 2, grpc = "10.0.0.2:5363", raft = "10.0.0.2:6003" },
#     { id = 3, grpc = "10.0.0.3:5363", raft = "10.0.0.3:6003" },
# ]

# [anonymous]
# read = ["public/#"]
# write = []

# Non-token users (e.g. a human operator), in mosquitto_passwd format
# (`mosquitto_passwd -c passwd operator`; $6$ and $7$ hashes).
# [users]
# file = "passwd"
#
# [[users.grants]]
# username = "operator"
# read = ["#", "$SYS/#"]
# write = ["ops/#"]

[[listener]]
type = "tcp"                           # tcp, tls, ws or wss
bind = "0.0.0.0:1883"
# max_packet_size = 1048576            # bytes
# max_topic_aliases = 10               # MQTT 5 Topic Alias Maximum (0 = none)
# max_keepalive = 65535                # seconds; MQTT 5 clients asking more get this

# [[listener]]
# type = "tls"
# bind = "0.0.0.0:8883"
# cert = "server.pem"                  # PEM chain
# key = "server.key"                   # PEM private key
# require_certificate = true           # clients need a certificate signed by `ca`; one that
#                                      # sends no password logs in as its certificate, with
#                                      # the [[users.grants]] of its identity as username
# ca = "clients-ca.pem"                # PEM certificates of the CAs of client certificates
# certificate_identity = "common_name" # or "subject" ("CN=dev7, O=tenant1")

# [[listener]]
# type = "ws"                          # path /mqtt, subprotocol "mqtt"
# bind = "0.0.0.0:8080"

[log]
level = "info"                         # error, warn, info, debug, trace
format = "text"                        # text or json

[metrics]
# Seconds between publications of the plugin's counters as retained messages under
# $SYS/broker/oauth/... (readable with a grant naming them, e.g. mqtt:read:$SYS/broker/oauth/#).
# 0 = off.
sys_interval = 10
"##;

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[listener]]\nbind = \"127.0.0.1:1883\"\n";

    fn auth(extra: &str) -> String {
        format!(
            "[auth]\nintrospection_url = \"http://127.0.0.1:9/introspect\"\nclient_id = \"b\"\n\
             client_secret = \"s\"\n{extra}\n{BASE}"
        )
    }

    fn error(text: &str) -> String {
        match BrokerConfig::parse(text, Path::new("/nonexistent")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_generated_default_is_valid() {
        let config = BrokerConfig::parse(DEFAULT_CONFIG, Path::new(".")).expect("default parses");
        assert!(!config.allow_anonymous);
        assert_eq!(config.auth.revalidate_interval, Duration::from_secs(60));
        assert!(config.auth.disconnect_on_expiry);
        assert_eq!(config.auth.token_username.as_deref(), Some("oauth2"));
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.metrics.sys_interval, Duration::from_secs(10));
    }

    #[test]
    fn auth_options_reach_the_core_with_the_plugin_semantics() {
        let config = BrokerConfig::parse(
            &auth(
                "leeway = 5\naudience = [\"a\", \"b\"]\nscope_prefix = \"iot:\"\ncache_ttl = 0\n\
                 revalidate_max_rps = 20\nrevalidate_concurrency = 2",
            ),
            Path::new("."),
        )
        .expect("parses");
        assert_eq!(config.auth.leeway, Duration::from_secs(5));
        assert_eq!((config.auth.revalidate_max_rps, config.auth.revalidate_concurrency), (20, 2));
        assert_eq!(config.auth.audiences, ["a", "b"]);
        assert_eq!(config.auth.scope_prefix, "iot:");
        assert_eq!(config.auth.cache.ttl, Duration::ZERO);
        assert_eq!(config.auth.revalidate_interval, Duration::from_secs(60));
        assert_eq!(config.log, LogConfig { level: "info".to_owned(), format: LogFormat::Text });
    }

    #[test]
    fn issuer_profiles_are_auth_issuers_tables() {
        let config = BrokerConfig::parse(
            &auth(
                "audience = \"urn:mqtt:broker\"\n\
                 [auth.issuers.cloud]\nissuer = \"https://idp.example.com/realms/iot\"\n\
                 jwks_url = \"https://idp.example.com/realms/iot/certs\"\nscope_prefix = \"iot:\"",
            ),
            Path::new("."),
        )
        .expect("parses");
        let profiles: Vec<_> = config.auth.profiles().collect();
        assert_eq!(profiles.len(), 2, "the default profile, then cloud");
        let (name, cloud) = profiles[1];
        assert_eq!(name, Some("cloud"));
        assert_eq!(
            (cloud.scope_prefix.as_str(), cloud.audiences.as_slice()),
            ("iot:", &["urn:mqtt:broker".to_owned()][..])
        );
        assert!(cloud.introspection.is_none(), "the default profile's endpoint is its own");
        assert_eq!(
            error(&auth("[auth.issuers.cloud]\nissuer = \"https://x\"\ncache_ttl = 5")),
            "option auth.issuers.cloud.cache_ttl: is not an issuer profile option; a profile takes issuer, jwks_url, jwks_file, introspection_url, client_id, client_secret, client_secret_file, client_auth, mode, audience, algorithms, leeway, scope_prefix, required_scopes, client_id_claim, username_claim, jwt_revocation"
        );
        assert_eq!(
            error(&auth("issuers = \"x\"")),
            "option auth.issuers: expected tables ([auth.issuers.<name>])"
        );
        assert_eq!(
            error(&auth("issuers.cloud = 5")),
            "option auth.issuers.cloud: expected a table ([auth.issuers.<name>])"
        );
    }

    const THREE_NODES: &str = "nodes = [\n\
        { id = 1, grpc = \"10.0.0.1:5363\", raft = \"10.0.0.1:6003\" },\n\
        { id = 2, grpc = \"10.0.0.2:5363\", raft = \"10.0.0.2:6003\" },\n\
        { id = 3, grpc = \"node-3.internal:5363\", raft = \"node-3.internal:6003\" },\n]\n";

    #[test]
    fn a_cluster_lists_every_node_and_names_this_one() {
        let config = BrokerConfig::parse(
            &auth(&format!("[cluster]\nnode_id = 2\n{THREE_NODES}")),
            Path::new("."),
        )
        .expect("parses");
        let cluster = config.cluster.as_ref().expect("[cluster]");
        assert_eq!((cluster.node_id, cluster.nodes[1].grpc.as_str()), (2, "10.0.0.2:5363"));
        assert_eq!(cluster.founder(), 1);
        assert_eq!(cluster.nodes[2].raft, "node-3.internal:6003");
        assert!(config.describe().contains("cluster node 2 of 1,2,3"), "{}", config.describe());
    }

    #[test]
    fn cluster_errors_name_the_option() {
        let node = |id: &str, grpc: &str, raft: &str| {
            format!("{{ id = {id}, grpc = \"{grpc}\", raft = \"{raft}\" }}")
        };
        let one = node("1", "h:1", "h:2");
        for (section, expected) in [
            (
                format!("nodes = [{one}]"),
                "option cluster.node_id is required: this node's id, one of cluster.nodes",
            ),
            (
                "node_id = 1".to_owned(),
                "option cluster.nodes is required: every node of the cluster, this one included: { id, grpc, raft }",
            ),
            (
                "node_id = 1\nnodes = []".to_owned(),
                "option cluster.nodes: expected a list of { id, grpc, raft } tables, one per node",
            ),
            (
                format!("node_id = 4\nnodes = [{one}]"),
                "option cluster.node_id: 4 is not the id of any of cluster.nodes",
            ),
            (
                format!("node_id = 1\nnodes = [{one}, {}]", node("1", "h:3", "h:4")),
                "option cluster.nodes[1].id: 1 is used twice",
            ),
            (
                format!("node_id = 1\nnodes = [{}]", node("0", "h:3", "h:4")),
                "option cluster.nodes[0].id: expected a number from 1",
            ),
            (
                format!("node_id = 1\nnodes = [{}]", node("1", "h", "h:4")),
                "option cluster.nodes[0].grpc: expected host:port, got \"h\"",
            ),
            (
                format!("node_id = 1\nnodes = [{}]", node("1", "h:3", ":4")),
                "option cluster.nodes[0].raft: expected host:port, got \":4\"",
            ),
            (
                format!("node_id = 1\nnodes = [{}]", node("1", "h:3", "h:3")),
                "option cluster.nodes[0].raft: h:3 is also the node's grpc address",
            ),
            (
                format!("node_id = 1\nnodes = [{one}, {}]", node("2", "h:2", "h:5")),
                "option cluster.nodes[1].grpc: h:2 is used twice",
            ),
            (format!("node_id = 1\nnodes = [{one}]\nleader = 1"), "unknown option cluster.leader"),
            (
                "node_id = 1\nnodes = [{ id = 1, grpc = \"h:1\" }]".to_owned(),
                "option cluster.nodes[0].raft is required: host:port the other nodes reach this node on",
            ),
        ] {
            assert_eq!(error(&auth(&format!("[cluster]\n{section}\n"))), expected, "{section}");
        }
        assert_eq!(
            error(&auth(&format!(
                "[storage]\ndir = \"d\"\n[cluster]\nnode_id = 1\nnodes = [{one}]\n"
            ))),
            "option cluster: cannot be combined with [storage] yet: a node restarting from its \
             session store would bring back sessions the cluster has handed to other nodes since"
        );
    }

    #[test]
    fn core_errors_name_the_toml_key() {
        let cases = [
            (
                auth("leeway = \"soon\""),
                "option auth.leeway: expected a whole number from 0 to 3600, got \"soon\"",
            ),
            (
                auth("leeway = 99999"),
                "option auth.leeway: expected a whole number from 0 to 3600, got 99999",
            ),
            (auth("leway = 3"), "unknown option auth.leway (did you mean auth.leeway?)"),
            (
                format!("[auth]\nmode = \"jwt\"\n{BASE}"),
                "option auth.jwks_url is required: auth.mode jwt needs keys: auth.jwks_url, auth.jwks_file or auth.issuer (discovery)",
            ),
            (
                format!("[auth]\nintrospection_url = \"http://127.0.0.1:9/oauth_x\"\n{BASE}"),
                "option auth.client_id is required: the introspection endpoint needs our client credentials",
            ),
            (
                auth("algorithms = [\"HS256\"]"),
                "option auth.algorithms: HS256 is symmetric; only asymmetric algorithms are accepted",
            ),
            // The plugin's own options are no core options: the broker has [log] and [metrics],
            // and no login waits on another here.
            (auth("log_dest = \"stdout\""), "unknown option auth.log_dest"),
            (auth("stats_interval = 1"), "unknown option auth.stats_interval"),
            (auth("login_wait_budget_ms = 100"), "unknown option auth.login_wait_budget_ms"),
            (
                auth("require_certificate_binding = \"required\""),
                "option auth.require_certificate_binding: required cannot be enforced by this broker: rmqtt 0.24 hands it a client certificate's CN, subject and serial but not the certificate, so no token can be proven bound to it; use when-present (certificate-bound tokens are refused) or off",
            ),
            (
                auth("oauth_leeway = 1"),
                "unknown option auth.oauth_leeway (did you mean auth.leeway?)",
            ),
            (
                auth("allow_anonymous = \"yes\""),
                "option auth.allow_anonymous: expected true or false, got string",
            ),
            (
                auth("revalidate_interval = -1"),
                "option auth.revalidate_interval: expected a whole number from 0 to 86400, got -1",
            ),
            (
                auth("disconnect_on_expiry = \"maybe\""),
                "option auth.disconnect_on_expiry: expected true or false, got \"maybe\"",
            ),
            (auth("audience = [1]"), "option auth.audience: expected a list of strings"),
        ];
        for (text, message) in cases {
            assert_eq!(error(&text), message, "{text}");
        }
        let e = BrokerConfig::parse(&auth("leeway = \"x\""), Path::new(".")).err();
        assert_eq!(e.as_ref().map(ConfigError::key), Some("auth.leeway"));
    }

    #[test]
    fn broker_errors_name_the_key() {
        let cases = [
            (
                format!("{}[storage]\ntype = \"redis\"\ndir = \"d\"\n", auth("")),
                "option storage.type: expected \"sled\" (the only engine built in), got \"redis\"",
            ),
            (
                format!("{}[storage]\n", auth("")),
                "option storage.dir is required: [storage] keeps its databases in this directory",
            ),
            (
                format!("{}[storage]\ndir = \"d\"\npath = \"e\"\n", auth("")),
                "unknown option storage.path",
            ),
            (
                "[auth]\njwks_file = \"j\"\n".to_owned(),
                "option listener is required: the broker needs at least one [[listener]]",
            ),
            (
                auth("").replace("bind = \"127.0.0.1:1883\"", "bind = \"nowhere\""),
                "option listener[0].bind: \"nowhere\" is not an address:port like 0.0.0.0:1883",
            ),
            (
                auth("").replace("bind = \"127.0.0.1:1883\"\n", ""),
                "option listener[0].bind is required: an address and port, e.g. \"0.0.0.0:1883\"",
            ),
            (
                format!("{}type = \"quic\"\n", auth("")),
                "option listener[0].type: expected tcp, tls, ws or wss, got \"quic\"",
            ),
            (
                format!("{}type = \"tls\"\n", auth("")),
                "option listener[0].cert is required: tls and wss listeners need a PEM certificate and key",
            ),
            (
                format!("{}type = \"tls\"\ncert = \"c.pem\"\nkey = \"k.pem\"\n", auth("")),
                "option listener[0].cert: cannot read /nonexistent/c.pem: No such file or directory (os error 2)",
            ),
            (
                format!("{}cert = \"c.pem\"\n", auth("")),
                "option listener[0].cert: only tls and wss listeners use certificates, this one is tcp",
            ),
            (format!("{}port = 1\n", auth("")), "unknown option listener[0].port"),
            (
                format!("{}require_certificate = true\n", auth("")),
                "option listener[0].require_certificate: only tls and wss listeners take client certificates, this one is tcp",
            ),
            (
                format!(
                    "{}type = \"tls\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nrequire_certificate = true\n",
                    auth("")
                ),
                "option listener[0].ca is required: require_certificate needs the PEM certificates of the CAs that sign client certificates",
            ),
            (
                format!(
                    "{}type = \"tls\"\ncert = \"c.pem\"\nkey = \"k.pem\"\nrequire_certificate = true\nca = \"ca.pem\"\n",
                    auth("")
                ),
                "option listener[0].ca: cannot read /nonexistent/ca.pem: No such file or directory (os error 2)",
            ),
            (
                format!(
                    "{}type = \"tls\"\nrequire_certificate = true\nca = \"ca.pem\"\ncertificate_identity = \"cn\"\n",
                    auth("")
                ),
                "option listener[0].certificate_identity: expected common_name or subject, got \"cn\"",
            ),
            (
                format!("{}ca = \"ca.pem\"\n", auth("")),
                "option listener[0].ca: only used with require_certificate = true",
            ),
            (
                format!("{}certificate_identity = \"subject\"\n", auth("")),
                "option listener[0].certificate_identity: only used with require_certificate = true",
            ),
            (
                format!("{}max_keepalive = 0\n", auth("")),
                "option listener[0].max_keepalive: expected a whole number of seconds from 1 to 65535, got 0",
            ),
            (
                format!("{}max_topic_aliases = 70000\n", auth("")),
                "option listener[0].max_topic_aliases: expected a whole number from 0 to 65535, got 70000",
            ),
            (
                format!("{}{BASE}", auth("")),
                "option listener[1].bind: 127.0.0.1:1883 is already used by listener[0]",
            ),
            (
                format!("{}[log]\nlevel = \"loud\"\n", auth("")),
                "option log.level: expected error, warn, info, debug or trace, got \"loud\"",
            ),
            (
                format!("{}[log]\nformat = \"xml\"\n", auth("")),
                "option log.format: expected text or json, got \"xml\"",
            ),
            (
                format!("{}[metrics]\nsys_interval = \"10\"\n", auth("")),
                "option metrics.sys_interval: expected a whole number from 0 to 86400, got string",
            ),
            (
                format!("{}[anonymous]\nread = [\"a/#/b\"]\n", auth("")),
                "option anonymous.read[0]: \"a/#/b\": has '#' that is not a whole last level",
            ),
            (
                format!("{}[users]\n", auth("")),
                "option users.file is required: [users] needs a mosquitto_passwd file unless a listener requires certificates",
            ),
            (
                format!("{}[users]\nfile = \"passwd\"\n", auth("")),
                "option users.file: cannot read /nonexistent/passwd: No such file or directory (os error 2)",
            ),
            (
                format!("{}[users]\nfile = \"p\"\n[[users.grants]]\nread = []\n", auth("")),
                "option users.grants[0].username is required: each grant names its user",
            ),
            (format!("{}[extra]\n", auth("")), "unknown option extra"),
            ("[auth\n".to_owned(), "not valid TOML (line 1): unclosed table, expected `]`"),
            (
                "a = 1\nb = \n".to_owned(),
                "not valid TOML (line 2): string values must be quoted, expected literal string",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(error(&text), message, "{text}");
        }
    }

    #[test]
    fn users_and_grants_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("passwd"),
            "op:$7$101$6mt3a5sdnezAGHNp$7ieqI2x9aPo1UTwWZcGQ4qxGMjfHWkhfdIJ86+XV9sgpDZs/dE/9gveWKuTy8uz4IwggCqtuCQRnDTQ5noC+Dw==\n",
        )
        .expect("written");
        let text = format!(
            "{}[users]\nfile = \"passwd\"\n[[users.grants]]\nusername = \"op\"\nread = [\"ops/#\"]\nwrite = [\"ops/%c/x\"]\n\
             [anonymous]\nread = [\"public/#\"]\n",
            auth("allow_anonymous = true\nrevalidate_interval = 0")
        );
        let config = BrokerConfig::parse(&text, dir.path()).expect("parses");
        let users = config.users.expect("users");
        assert_eq!(users.file, Some(dir.path().join("passwd")));
        assert_eq!(
            users.grants,
            [UserGrants {
                username: "op".to_owned(),
                grants: GrantLists {
                    read: vec!["ops/#".to_owned()],
                    write: vec!["ops/%c/x".to_owned()]
                },
            }]
        );
        assert!(config.allow_anonymous);
        assert_eq!(config.auth.revalidate_interval, Duration::ZERO);
        assert_eq!(config.anonymous.read, ["public/#"]);
        let duplicate =
            text.replace("[anonymous]", "[[users.grants]]\nusername = \"op\"\n[anonymous]");
        assert_eq!(
            BrokerConfig::parse(&duplicate, dir.path()).err().map(|e| e.to_string()).as_deref(),
            Some("option users.grants[1].username: \"op\" already has grants")
        );
    }

    #[test]
    fn certificate_listeners_take_a_ca_and_need_no_users_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in ["server.pem", "server.key", "ca.pem"] {
            std::fs::write(dir.path().join(file), "").expect("written");
        }
        let text = "[auth]\nintrospection_url = \"http://127.0.0.1:9/introspect\"\nclient_id = \"b\"\n\
             client_secret = \"s\"\n\
             [[listener]]\ntype = \"tls\"\nbind = \"127.0.0.1:8883\"\ncert = \"server.pem\"\n\
             key = \"server.key\"\nrequire_certificate = true\nca = \"ca.pem\"\n\
             certificate_identity = \"subject\"\n\
             [[listener]]\nbind = \"127.0.0.1:1883\"\n\
             [users]\n[[users.grants]]\nusername = \"CN=dev7, O=tenant1\"\nwrite = [\"t/%u\"]\n";
        let config = BrokerConfig::parse(text, dir.path()).expect("parses");
        assert_eq!(
            config.listeners[0].client_certificates,
            Some(ClientCertificates {
                ca: dir.path().join("ca.pem"),
                identity: CertificateIdentity::Subject
            })
        );
        assert_eq!(config.listeners[1].client_certificates, None);
        assert_eq!(config.users.as_ref().and_then(|u| u.file.as_ref()), None);
        assert!(config.describe().contains("certificate logins on 1 listener(s)"));
        let without = text.replace(
            "require_certificate = true\nca = \"ca.pem\"\ncertificate_identity = \"subject\"\n",
            "",
        );
        assert_eq!(
            BrokerConfig::parse(&without, dir.path()).err().map(|e| e.to_string()).as_deref(),
            Some(
                "option users.file is required: [users] needs a mosquitto_passwd file unless a listener requires certificates"
            )
        );
    }
}
