//! The startup check for mixed brokers: when every password is a token candidate, a
//! password-file user's password would be sent to the authorization server. Two set-ups avoid
//! that (see README, "Mixing token devices and password users"); this warns when the broker's
//! configuration has a `password_file` but neither is in place.

use std::path::{Path, PathBuf};

/// What the broker's configuration file says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BrokerSettings {
    /// A `password_file` line is present.
    pub password_file: bool,
    /// `per_listener_settings true`.
    pub per_listener_settings: bool,
}

impl BrokerSettings {
    /// Reads the relevant lines of a `mosquitto.conf` text (comments and other lines ignored).
    pub fn parse(config: &str) -> Self {
        let mut settings = Self::default();
        for line in config.lines().map(str::trim) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("password_file"), Some(_)) => settings.password_file = true,
                (Some("per_listener_settings"), Some(value)) => {
                    settings.per_listener_settings = value == "true";
                }
                _ => {}
            }
        }
        settings
    }

    /// The warning to log, if the set-up can leak passwords to the authorization server.
    pub fn leak_warning(&self, token_username: Option<&str>) -> Option<&'static str> {
        (self.password_file && token_username.is_none() && !self.per_listener_settings).then_some(
            "password_file is configured but oauth_token_username is not set and per_listener_settings is false: \
             password-file users' passwords will be sent to the authorization server as tokens. \
             Set oauth_token_username, or put token devices and password users on separate listeners \
             with per_listener_settings true",
        )
    }
}

/// The `-c`/`--config-file` argument of this process (the running broker), if any.
pub fn broker_config_path() -> Option<PathBuf> {
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let index = args.iter().position(|a| *a == b"-c" || *a == b"--config-file")?;
    let path = std::str::from_utf8(args.get(index + 1)?).ok()?;
    Some(Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_without_a_safe_setup_is_warned_about() {
        let shared = BrokerSettings::parse(
            "listener 1883\n# password_file commented\npassword_file /etc/mosquitto/passwd\n",
        );
        assert!(shared.password_file && !shared.per_listener_settings);
        assert!(shared.leak_warning(None).is_some());
        assert!(shared.leak_warning(Some("oauth2")).is_none());
        let separate = BrokerSettings::parse("per_listener_settings true\npassword_file /p\n");
        assert!(separate.leak_warning(None).is_none());
        assert!(BrokerSettings::parse("allow_anonymous false\n").leak_warning(None).is_none());
    }
}
