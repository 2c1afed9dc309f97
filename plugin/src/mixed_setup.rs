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
}

impl BrokerSettings {
    /// Reads the relevant lines of a `mosquitto.conf` text (comments and other lines ignored).
    pub fn parse(config: &str) -> Self {
        let mut settings = Self::default();
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
                _ => {}
            }
        }
        settings
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
    fn password_file_usernames_are_the_names_before_the_colon() {
        let text = "# operators\nhuman:$7$101$abc\n\n  ops:$6$x$y  \nbroken-line\n";
        assert_eq!(usernames(text).collect::<Vec<_>>(), ["human", "ops"]);
    }
}
