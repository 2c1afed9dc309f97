//! Brokers mixing token devices and password users. When every password is a token candidate,
//! a password-file user's password would be sent to the authorization server. Two set-ups avoid
//! that (see README, "Mixing token devices and password users"); this warns when the broker's
//! configuration has a `password_file` but neither is in place. Without `oauth_token_username`
//! the password files' users are also never token logins ([`LocalUsers`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What the broker's configuration file says that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BrokerSettings {
    /// A `password_file` line is present.
    pub password_file: bool,
    /// The files those lines name, in order.
    pub password_files: Vec<PathBuf>,
    /// `per_listener_settings true`.
    pub per_listener_settings: bool,
    /// Listeners where Mosquitto takes a client's certificate identity as its username and
    /// never asks a plugin to check a password (`use_identity_as_username` or
    /// `use_subject_as_username true`), by their `listener` line's arguments.
    pub identity_listeners: Vec<IdentityListener>,
}

/// A listener with `use_identity_as_username` or `use_subject_as_username true`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IdentityListener {
    /// What follows `listener` (port and address).
    pub listener: String,
    /// A `plugin` or `auth_plugin` line appears in this listener's block.
    pub has_plugin: bool,
}

impl BrokerSettings {
    /// Reads the relevant lines of a `mosquitto.conf` text (comments and other lines ignored).
    pub fn parse(config: &str) -> Self {
        let mut settings = Self::default();
        // The current listener block, and whether it takes identities as usernames.
        let mut block: Option<(IdentityListener, bool)> = None;
        let close = |block: Option<(IdentityListener, bool)>, settings: &mut Self| {
            if let Some((listener, true)) = block {
                settings.identity_listeners.push(listener);
            }
        };
        for line in config.lines().map(str::trim) {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("password_file"), Some(path)) => {
                    settings.password_file = true;
                    settings.password_files.push(PathBuf::from(path));
                }
                (Some("per_listener_settings"), Some(value)) => {
                    settings.per_listener_settings = value == "true";
                }
                (Some("listener"), Some(port)) => {
                    close(block.take(), &mut settings);
                    let listener = std::iter::once(port).chain(words).collect::<Vec<_>>().join(" ");
                    block = Some((IdentityListener { listener, has_plugin: false }, false));
                }
                (Some("use_identity_as_username" | "use_subject_as_username"), Some("true")) => {
                    if let Some((_, takes_identity)) = &mut block {
                        *takes_identity = true;
                    }
                }
                (Some("plugin" | "auth_plugin"), Some(_)) => {
                    if let Some((listener, _)) = &mut block {
                        listener.has_plugin = true;
                    }
                }
                _ => {}
            }
        }
        close(block, &mut settings);
        settings
    }

    /// Warnings for listeners where the plugin is configured but Mosquitto will never ask it
    /// to check a password: with `per_listener_settings false` the plugin serves every
    /// listener; with `true`, those whose block loads a plugin.
    pub fn identity_listener_warnings(&self) -> Vec<String> {
        self.identity_listeners
            .iter()
            .filter(|listener| !self.per_listener_settings || listener.has_plugin)
            .map(|IdentityListener { listener, .. }| {
                format!(
                    "listener {listener} takes each client's certificate identity as its username \
                     (use_identity_as_username / use_subject_as_username): Mosquitto never asks \
                     the plugin to check a password there, so a token presented on it grants \
                     nothing. Give token devices a listener without it (per_listener_settings true, \
                     see README \"Device identity\")"
                )
            })
            .collect()
    }

    /// The warning to log, if the set-up can leak passwords to the authorization server.
    pub fn leak_warning(&self, token_username: Option<&str>) -> Option<&'static str> {
        (self.password_file && token_username.is_none() && !self.per_listener_settings).then_some(
            "password_file is configured but oauth_token_username is not set and per_listener_settings is false: \
             logins with a password_file username are left to the password file, but any other login's password \
             (an operator's mistyped username included) is sent to the authorization server as a token. \
             Set oauth_token_username, or put token devices and password users on separate listeners \
             with per_listener_settings true",
        )
    }
}

/// The usernames of the broker's password files. Without `oauth_token_username`, a login with
/// one of them is that user's: it is left to the password file without a call to the
/// authorization server, and a token holder cannot borrow the name (see
/// `Config::is_token_login`). Read at start and again on reload, as Mosquitto reads the files.
#[derive(Debug, Default)]
pub struct LocalUsers {
    files: Vec<PathBuf>,
    names: HashSet<Box<str>>,
}

impl LocalUsers {
    /// The users of `files`, read now.
    pub fn load(files: Vec<PathBuf>) -> Self {
        let mut users = Self { files, names: HashSet::new() };
        users.reload();
        users
    }

    /// Reads the files again. A file that cannot be read is logged and contributes no names:
    /// Mosquitto cannot read it either, so none of its users can log in.
    pub fn reload(&mut self) {
        self.names.clear();
        for file in &self.files {
            match std::fs::read_to_string(file) {
                Ok(text) => self.names.extend(usernames(&text).map(Box::from)),
                Err(e) => log::warn!("cannot read password_file {}: {e}", file.display()),
            }
        }
    }

    /// True for a user of one of the password files.
    pub fn contains(&self, username: &str) -> bool {
        self.names.contains(username)
    }
}

/// The usernames of a `mosquitto_passwd` file: `name:hash` lines; blank lines and `#` comments
/// skipped.
fn usernames(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
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
        assert_eq!(shared.password_files, [PathBuf::from("/etc/mosquitto/passwd")]);
    }

    #[test]
    fn listeners_taking_certificate_identities_are_warned_about_where_the_plugin_serves_them() {
        let identity =
            "listener 8883 0.0.0.0\nrequire_certificate true\nuse_identity_as_username true\n";
        let plain = "listener 1883\n";
        let plugin = "plugin /usr/lib/mosquitto_oauth.so\n";
        // (config, listeners warned about)
        let cases: [(String, &[&str]); 5] = [
            (format!("{plain}{identity}{plugin}"), &["8883 0.0.0.0"]),
            (format!("{plugin}{plain}listener 8884\nuse_subject_as_username true\n"), &["8884"]),
            (format!("per_listener_settings true\n{identity}acl_file a\n{plain}{plugin}"), &[]),
            (
                format!("per_listener_settings true\n{plain}{plugin}{identity}{plugin}"),
                &["8883 0.0.0.0"],
            ),
            (format!("{plain}listener 8883\nuse_identity_as_username false\n{plugin}"), &[]),
        ];
        for (config, expected) in cases {
            let warnings = BrokerSettings::parse(&config).identity_listener_warnings();
            let warned: Vec<&str> = warnings
                .iter()
                .filter_map(|w| w.strip_prefix("listener ")?.split(" takes").next())
                .collect();
            assert_eq!(warned, expected, "{config}");
        }
    }

    #[test]
    fn password_file_usernames_are_the_names_before_the_colon() {
        let text = "# operators\nhuman:$7$101$abc\n\n  ops:$6$x$y  \nbroken-line\n";
        assert_eq!(usernames(text).collect::<Vec<_>>(), ["human", "ops"]);
    }
}
