//! The plugin's configuration: the core's options plus the ones only the plugin has (where its
//! log goes, `$SYS` counters, how long Mosquitto's thread may wait for the authorization server,
//! the MQTT 5 authentication method), read from Mosquitto's `plugin_opt_*`/`auth_opt_*` pairs by
//! the core's deserializer, so both share names, aliases, hints and messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oauth_core::config::{self, OptionValue, Reader, Spelling};
use oauth_core::{Config, ConfigError};
use serde::Deserialize;

/// Default `oauth_login_wait_budget_ms` (at most `oauth_http_timeout_ms`): how long Mosquitto's
/// thread may wait for the authorization server in one pass of its event loop. Short, so that a
/// flood of logins with unknown tokens cannot stall connected clients by seconds: a message
/// waits about two budgets at most (benchmark C), and a refused device's reconnect is answered
/// from the cache.
pub const DEFAULT_LOGIN_WAIT_BUDGET_MS: u64 = 150;
/// Default `oauth_stats_interval`: seconds between counter publications (0 = off).
pub const DEFAULT_STATS_INTERVAL_SECS: u64 = 10;
/// Default `oauth_auth_method`: MQTT 5 Authentication Method whose data is the access token.
pub const DEFAULT_AUTH_METHOD: &str = "OAUTHBEARER";

/// Where log lines go (`oauth_log_dest`, gomozzie's `openam_log_dest`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDest {
    /// Mosquitto's own log (its `log_dest`).
    #[default]
    Host,
    /// Nowhere.
    None,
    /// Standard output.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
}

/// The plugin's own options, as given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginOptions {
    #[serde(alias = "openam_log_dest")]
    log_dest: Option<OptionValue>,
    stats_interval: Option<OptionValue>,
    login_wait_budget_ms: Option<OptionValue>,
    auth_method: Option<OptionValue>,
}

/// Everything a plugin instance is configured with, validated.
#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// The core's configuration.
    pub core: Config,
    /// Log destination.
    pub log_dest: LogDest,
    /// Seconds between `$SYS/broker/oauth/...` publications; zero disables them.
    pub stats_interval: Duration,
    /// How long Mosquitto's thread may wait for the authorization server in one pass of its
    /// event loop, all logins of the pass together (at most the HTTP timeout).
    pub login_wait_budget: Duration,
    /// MQTT 5 Authentication Method carrying the token.
    pub auth_method: String,
}

impl PluginConfig {
    /// Builds and validates the configuration from Mosquitto's option pairs; other plugins'
    /// options (neither `oauth_*` nor `openam_*`) are ignored.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let own_names = config::option_names::<PluginOptions>();
        let (own, core): (Vec<_>, Vec<_>) = config::plugin_entries(pairs)
            .into_iter()
            .partition(|(name, _)| own_names.contains(&name.as_str()));
        let spelling = Spelling::PLUGIN;
        let core = Config::from_options(core, spelling.clone(), Path::new(""), own_names)?;
        let given: PluginOptions = config::deserialize_options(own, &spelling, &[])?;
        let read = Reader::new(spelling, Path::new(""));
        let http_timeout_ms = u64::try_from(core.http_timeout.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            log_dest: match read.text("log_dest", given.log_dest.as_ref())? {
                Some(value) => parse_log_dest(&read.key("log_dest"), &value)?,
                None => LogDest::Host,
            },
            stats_interval: Duration::from_secs(read.number(
                "stats_interval",
                given.stats_interval.as_ref(),
                DEFAULT_STATS_INTERVAL_SECS,
                (0, 86_400),
            )?),
            login_wait_budget: Duration::from_millis(read.number(
                "login_wait_budget_ms",
                given.login_wait_budget_ms.as_ref(),
                http_timeout_ms.min(DEFAULT_LOGIN_WAIT_BUDGET_MS),
                (0, config::MAX_HTTP_TIMEOUT_MS),
            )?),
            auth_method: read
                .text("auth_method", given.auth_method.as_ref())?
                .unwrap_or_else(|| DEFAULT_AUTH_METHOD.to_owned()),
            core,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const INTROSPECTION: [(&str, &str); 3] = [
        ("oauth_introspection_url", "https://am.example.com/introspect"),
        ("oauth_client_id", "mqtt-broker"),
        ("oauth_client_secret", "secret"),
    ];

    fn parse(extra: &[(&'static str, &'static str)]) -> Result<PluginConfig, ConfigError> {
        PluginConfig::from_pairs(INTROSPECTION.iter().chain(extra).copied())
    }

    fn error(extra: &[(&'static str, &'static str)]) -> String {
        parse(extra).expect_err("refused").to_string()
    }

    #[test]
    fn plugin_options_have_the_documented_defaults() {
        let config = parse(&[]).expect("valid");
        assert_eq!(config.login_wait_budget, Duration::from_millis(150));
        assert_eq!(config.stats_interval, Duration::from_secs(10));
        assert_eq!(config.log_dest, LogDest::Host);
        assert_eq!(config.auth_method, "OAUTHBEARER");
        assert_eq!(config.core.leeway, Duration::from_secs(30));
    }

    #[test]
    fn login_wait_budget_is_short_and_never_longer_than_the_http_timeout() {
        let short = parse(&[("oauth_http_timeout_ms", "100")]).expect("valid");
        assert_eq!(short.login_wait_budget, Duration::from_millis(100));
        let set = parse(&[("oauth_login_wait_budget_ms", "0")]).expect("valid");
        assert_eq!(set.login_wait_budget, Duration::ZERO);
    }

    #[test]
    fn plugin_options_are_checked_and_named_like_the_cores() {
        let cases = [
            (
                ("oauth_log_dest", "syslog"),
                "option oauth_log_dest: expected none, stdout, host or \"file <path>\", got \"syslog\"",
            ),
            (
                ("oauth_login_wait_budget_ms", "-1"),
                "option oauth_login_wait_budget_ms: expected a whole number from 0 to 60000, got \"-1\"",
            ),
            (
                ("oauth_stats_intervall", "1"),
                "unknown option oauth_stats_intervall (did you mean oauth_stats_interval?)",
            ),
            (
                ("oauth_cache_tll", "1"),
                "unknown option oauth_cache_tll (did you mean oauth_cache_ttl?)",
            ),
            (("oauth_auth_method", ""), "option oauth_auth_method: must not be empty"),
        ];
        for (pair, message) in cases {
            assert_eq!(error(&[pair]), message);
        }
        let gomozzie =
            parse(&[("openam_log_dest", "stdout"), ("other_plugin_opt", "x")]).expect("valid");
        assert_eq!(gomozzie.log_dest, LogDest::Stdout);
        assert_eq!(
            error(&[("oauth_log_dest", "none"), ("openam_log_dest", "none")]),
            "option oauth_log_dest is given more than once (under its name or an alias)"
        );
    }
}
