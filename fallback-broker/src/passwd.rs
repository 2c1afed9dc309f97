//! Users files in Mosquitto's `mosquitto_passwd` format, so an operator's existing file works
//! unchanged.
//!
//! One `username:hash` per line; empty lines and lines starting with `#` are skipped. Two hash
//! formats exist, both written by `mosquitto_passwd` 2.x:
//!
//! - `$6$<salt>$<hash>`: salted SHA-512, `hash = SHA-512(password || salt)` (`-H sha512`, the
//!   only format of Mosquitto 1.6 and earlier);
//! - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA-512 with 64 output bytes (the default of
//!   Mosquitto 2.0).
//!
//! Salt and hash are standard base64. Comparisons are constant-time, and a login for an unknown
//! user costs the same work as one for a known user.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;

use aws_lc_rs::{constant_time, digest, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Largest PBKDF2 iteration count accepted from a file: bounds the CPU one login can cost.
const MAX_ITERATIONS: u32 = 10_000_000;

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$6$`: SHA-512 over password then salt.
    Sha512 {
        /// Raw salt bytes.
        salt: Vec<u8>,
        /// Raw digest (64 bytes).
        hash: Vec<u8>,
    },
    /// `$7$`: PBKDF2-HMAC-SHA-512.
    Pbkdf2Sha512 {
        /// Iteration count.
        iterations: NonZeroU32,
        /// Raw salt bytes.
        salt: Vec<u8>,
        /// Raw derived key.
        hash: Vec<u8>,
    },
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha512 { .. } => f.write_str("PasswordHash::Sha512(..)"),
            Self::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "PasswordHash::Pbkdf2Sha512({iterations} iterations, ..)")
            }
        }
    }
}

impl PasswordHash {
    /// Parses the part after `username:`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let decode = |what: &str, value: &str| {
            STANDARD.decode(value).map_err(|e| format!("{what} is not base64: {e}"))
        };
        if let Some(rest) = text.strip_prefix("$6$") {
            let (salt, hash) = rest.split_once('$').ok_or("expected $6$<salt>$<hash>")?;
            let hash = decode("hash", hash)?;
            if hash.len() != 64 {
                return Err(format!("hash has {} bytes, SHA-512 has 64", hash.len()));
            }
            Ok(Self::Sha512 { salt: decode("salt", salt)?, hash })
        } else if let Some(rest) = text.strip_prefix("$7$") {
            let mut parts = rest.splitn(3, '$');
            let (Some(iterations), Some(salt), Some(hash)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err("expected $7$<iterations>$<salt>$<hash>".to_owned());
            };
            let iterations = iterations
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_ITERATIONS)
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    format!(
                        "iteration count {iterations:?} is not a number from 1 to {MAX_ITERATIONS}"
                    )
                })?;
            let hash = decode("hash", hash)?;
            if hash.is_empty() || hash.len() > 64 {
                return Err(format!("hash has {} bytes, expected 1 to 64", hash.len()));
            }
            Ok(Self::Pbkdf2Sha512 { iterations, salt: decode("salt", salt)?, hash })
        } else if text.starts_with('$') {
            Err("unknown hash type (expected $6$ or $7$)".to_owned())
        } else {
            Err("not a hashed password: run `mosquitto_passwd -U` on the file".to_owned())
        }
    }

    /// True if `password` hashes to this entry (constant-time comparison).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Sha512 { salt, hash } => {
                let mut context = digest::Context::new(&digest::SHA512);
                context.update(password);
                context.update(salt);
                let computed = context.finish();
                constant_time::verify_slices_are_equal(computed.as_ref(), hash).is_ok()
            }
            Self::Pbkdf2Sha512 { iterations, salt, hash } => {
                pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA512, *iterations, salt, password, hash)
                    .is_ok()
            }
        }
    }
}

/// The users of a users file.
#[derive(Debug, Clone, Default)]
pub struct UsersFile {
    users: HashMap<String, PasswordHash>,
}

/// Stand-in hash verified for unknown users, so their logins take as long as real ones.
fn decoy() -> PasswordHash {
    PasswordHash::Pbkdf2Sha512 {
        iterations: NonZeroU32::MIN.saturating_add(100),
        salt: vec![0x5a; 12],
        hash: vec![0; 64],
    }
}

impl UsersFile {
    /// Parses the text of a users file; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let number = index + 1;
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {number}: expected username:hash"))?;
            if name.is_empty() {
                return Err(format!("line {number}: empty username"));
            }
            let hash =
                PasswordHash::parse(hash).map_err(|problem| format!("line {number}: {problem}"))?;
            if users.insert(name.to_owned(), hash).is_some() {
                return Err(format!("line {number}: user {name:?} appears twice"));
            }
        }
        Ok(Self { users })
    }

    /// Reads and parses a users file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|problem| format!("{}: {problem}", path.display()))
    }

    /// Whether `username` is in the file.
    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file lists nobody.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// True if `username` exists and `password` is theirs. Unknown users cost the same work.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        match self.users.get(username) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = decoy().verify(password);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `mosquitto_passwd -b -c` (Mosquitto 2.0.11): alice/secret with the default
    // sha512-pbkdf2, bob/hunter2 with `-H sha512`.
    const ALICE_7: &str = "alice:$7$101$6mt3a5sdnezAGHNp$7ieqI2x9aPo1UTwWZcGQ4qxGMjfHWkhfdIJ86+XV9sgpDZs/dE/9gveWKuTy8uz4IwggCqtuCQRnDTQ5noC+Dw==";

    #[test]
    fn pbkdf2_entries_from_mosquitto_passwd_verify() {
        let users = UsersFile::parse(ALICE_7).unwrap_or_default();
        assert_eq!(users.len(), 1);
        assert!(users.verify("alice", b"secret"));
        assert!(!users.verify("alice", b"Secret"));
        assert!(!users.verify("alice", b""));
        assert!(!users.verify("bob", b"secret"));
    }

    /// Runs the installed `mosquitto_passwd` for each hash type and checks our verification of
    /// its output (skipped with a note when the tool is missing).
    #[test]
    fn files_written_by_the_installed_mosquitto_passwd_verify() {
        let tool = std::env::var_os("MOSQUITTO_PASSWD_BIN")
            .unwrap_or_else(|| "/usr/bin/mosquitto_passwd".into());
        if !Path::new(&tool).exists() {
            eprintln!("note: {tool:?} not installed; only the embedded sample was checked");
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for (algorithm, prefix) in [("sha512", "$6$"), ("sha512-pbkdf2", "$7$")] {
            let path = dir.path().join(algorithm);
            let status = std::process::Command::new(&tool)
                .args(["-H", algorithm, "-b", "-c"])
                .arg(&path)
                .args(["operator", "pä ss:wörd"])
                .status()
                .expect("mosquitto_passwd runs");
            assert!(status.success());
            let status = std::process::Command::new(&tool)
                .args(["-H", algorithm, "-b"])
                .arg(&path)
                .args(["second", "other"])
                .status()
                .expect("mosquitto_passwd runs");
            assert!(status.success());
            let text = std::fs::read_to_string(&path).expect("file written");
            assert!(text.contains(&format!("operator:{prefix}")), "{text}");
            let users = UsersFile::load(&path).expect("parses");
            assert_eq!(users.len(), 2);
            assert!(users.verify("operator", "pä ss:wörd".as_bytes()), "{algorithm}");
            assert!(users.verify("second", b"other"), "{algorithm}");
            assert!(!users.verify("operator", b"other"), "{algorithm}");
            assert!(!users.verify("second", "pä ss:wörd".as_bytes()), "{algorithm}");
        }
    }

    #[test]
    fn sha512_entries_hash_password_then_salt() {
        let salt = b"0123456789ab";
        let mut context = digest::Context::new(&digest::SHA512);
        context.update(b"pw");
        context.update(salt);
        let line = format!(
            "u:$6${}${}",
            STANDARD.encode(salt),
            STANDARD.encode(context.finish().as_ref())
        );
        let users = UsersFile::parse(&line).unwrap_or_default();
        assert!(users.verify("u", b"pw"));
        assert!(!users.verify("u", b"pw "));
    }

    #[test]
    fn malformed_files_name_the_line() {
        let cases = [
            ("alice", "line 1: expected username:hash"),
            ("\n:$6$AA==$AA==", "line 2: empty username"),
            ("a:plain", "line 1: not a hashed password: run `mosquitto_passwd -U` on the file"),
            ("a:$5$x$y", "line 1: unknown hash type (expected $6$ or $7$)"),
            ("a:$6$nosep", "line 1: expected $6$<salt>$<hash>"),
            ("a:$6$AA==$AAAA", "line 1: hash has 3 bytes, SHA-512 has 64"),
            (
                "a:$7$0$AA==$AA==",
                "line 1: iteration count \"0\" is not a number from 1 to 10000000",
            ),
            ("a:$7$10$AA==", "line 1: expected $7$<iterations>$<salt>$<hash>"),
            ("# c\n\na:$7$10$!!$AA==", "line 3: salt is not base64: Invalid symbol 33, offset 0."),
        ];
        for (text, message) in cases {
            assert_eq!(UsersFile::parse(text).err().as_deref(), Some(message), "{text:?}");
        }
        let twice = format!("{ALICE_7}\n{ALICE_7}");
        assert_eq!(
            UsersFile::parse(&twice).err().as_deref(),
            Some("line 2: user \"alice\" appears twice")
        );
    }

    #[test]
    fn debug_output_never_shows_hashes() {
        let users = UsersFile::parse(ALICE_7).unwrap_or_default();
        let text = format!("{users:?}");
        assert!(!text.contains("7ieq") && !text.contains("6mt3"), "{text}");
    }
}
