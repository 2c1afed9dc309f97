//! Scopes to topic rights, and the ACL decision for one client.
//!
//! A token's `<prefix>write:<filter>` scopes allow PUBLISH to matching topics, and its
//! `<prefix>read:<filter>` scopes allow SUBSCRIBE to filters inside them and delivery of matching
//! topics. Every such scope counts. `%c` and `%u` in a filter stand for the MQTT client id and
//! username; they are resolved once per session ([`Grants::resolve`]) so that the per-message
//! check ([`SessionGrants::allows`]) is a scan over plain filters.

use std::fmt;

use crate::topic::{self, Filter};

/// What a client asks to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A message on this topic is about to be delivered to the client.
    Read,
    /// The client publishes to this topic (also: its will).
    Write,
    /// The client subscribes to this filter.
    Subscribe,
    /// The client unsubscribes from this filter; always allowed, as it can only reduce rights.
    Unsubscribe,
}

/// A grant filter as written in a scope: may hold `%c`/`%u` placeholders.
#[derive(Clone, PartialEq, Eq)]
struct ScopeFilter {
    filter: Filter,
}

impl ScopeFilter {
    fn parse(text: &str) -> Result<Self, topic::TopicError> {
        Ok(Self { filter: Filter::parse(text)? })
    }

    /// The filter with placeholders replaced, or `None` when a placeholder cannot be filled
    /// safely (missing value, or a value with topic syntax in it that would widen the grant).
    fn resolve(&self, client_id: &str, username: Option<&str>) -> Option<Filter> {
        // Looked up per login rather than stored: a flag would be paid per cached grant.
        let source = self.filter.as_str();
        if !source.contains('%') {
            return Some(self.filter.clone());
        }
        // One pass, so a client id containing "%u" is not expanded a second time.
        let mut text = String::with_capacity(source.len() + 16);
        let mut rest = source;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            let value = match rest.as_bytes().get(at + 1) {
                Some(b'c') => Some(safe_placeholder_value(Some(client_id))?),
                Some(b'u') => Some(safe_placeholder_value(username)?),
                _ => None,
            };
            match value {
                Some(value) => {
                    text.push_str(value);
                    rest = &rest[at + 2..];
                }
                None => {
                    text.push('%');
                    rest = &rest[at + 1..];
                }
            }
        }
        text.push_str(rest);
        Filter::parse(&text).ok()
    }
}

fn safe_placeholder_value(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty() && !v.contains(['+', '#', '/', '\0']))
}

/// The topic rights carried by one token, before they are bound to a client.
///
/// One of these is cached per valid token, so it is kept to one exact-size allocation (plus
/// each filter's text): the read filters, then the write filters.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Grants {
    filters: Box<[ScopeFilter]>,
    /// Index of the first write filter in `filters`.
    writes_from: usize,
}

impl Grants {
    /// Collects the read and write grants from a token's scopes. Scopes without the prefix are
    /// not topic grants and are skipped; grants with a malformed filter are dropped with a
    /// warning (never widened to something that parses).
    pub fn from_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>, prefix: &str) -> Self {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for scope in scopes {
            let Some(rest) = scope.strip_prefix(prefix) else { continue };
            let (list, filter) = if let Some(filter) = rest.strip_prefix("write:") {
                (&mut write, filter)
            } else if let Some(filter) = rest.strip_prefix("read:") {
                (&mut read, filter)
            } else {
                continue;
            };
            match ScopeFilter::parse(filter) {
                Ok(parsed) if !list.contains(&parsed) => list.push(parsed),
                Ok(_duplicate) => {}
                Err(problem) => {
                    log::warn!("ignoring scope {scope:?}: its topic filter {problem}");
                }
            }
        }
        let writes_from = read.len();
        read.append(&mut write);
        Self { filters: read.into_boxed_slice(), writes_from }
    }

    fn read(&self) -> &[ScopeFilter] {
        &self.filters[..self.writes_from]
    }

    fn write(&self) -> &[ScopeFilter] {
        &self.filters[self.writes_from..]
    }

    /// True when the token grants nothing at all.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Binds the grants to one client: fills `%c` and `%u`, dropping placeholder grants the
    /// client's id or username cannot fill safely.
    pub fn resolve(&self, client_id: &str, username: Option<&str>) -> SessionGrants {
        let bind = |filters: &[ScopeFilter]| -> Box<[Filter]> {
            filters.iter().filter_map(|f| f.resolve(client_id, username)).collect()
        };
        SessionGrants { read: bind(self.read()), write: bind(self.write()) }
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |list: &[ScopeFilter]| -> Vec<String> {
            list.iter().map(|s| s.filter.to_string()).collect()
        };
        f.debug_struct("Grants")
            .field("read", &names(self.read()))
            .field("write", &names(self.write()))
            .finish()
    }
}

/// The grants of one connected client, placeholders resolved: what every ACL check consults.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionGrants {
    read: Box<[Filter]>,
    write: Box<[Filter]>,
}

impl SessionGrants {
    /// Decides one ACL check. `topic` is a topic name for `Read`/`Write` (matched as bytes, see
    /// [`topic::matches`]) and a filter (possibly `$share/<group>/...`) for
    /// `Subscribe`/`Unsubscribe`, which must be UTF-8.
    ///
    /// An empty topic name is never allowed, although `#` and `+` match it: MQTT has no such
    /// topic, and a broker that let one through (rmqtt 0.24 delivers a PUBLISH with an empty
    /// topic and a Topic Alias never set as a message on `""`) must not have it authorized.
    #[inline]
    pub fn allows(&self, access: Access, topic: impl AsRef<[u8]>) -> bool {
        let topic = topic.as_ref();
        match access {
            Access::Write | Access::Read if topic.is_empty() => false,
            Access::Write => self.write.iter().any(|f| f.matches(topic)),
            Access::Read => self.read.iter().any(|f| f.matches(topic)),
            Access::Subscribe => self.allows_subscription(topic),
            Access::Unsubscribe => true,
        }
    }

    fn allows_subscription(&self, filter: &[u8]) -> bool {
        match std::str::from_utf8(filter).map(topic::strip_shared_prefix) {
            Ok(Ok(filter)) if topic::validate_filter(filter).is_ok() => {
                self.read.iter().any(|f| f.contains(filter))
            }
            _ => false,
        }
    }

    /// The resolved read filters.
    pub fn read_filters(&self) -> &[Filter] {
        &self.read
    }

    /// The resolved write filters.
    pub fn write_filters(&self) -> &[Filter] {
        &self.write
    }
}

impl fmt::Debug for SessionGrants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionGrants")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(scopes: &str, client_id: &str, username: Option<&str>) -> SessionGrants {
        Grants::from_scopes(scopes.split(' '), "mqtt:").resolve(client_id, username)
    }

    fn check_table(scopes: &str, table: &[(Access, &str, bool)]) {
        let grants = session(scopes, "dev1", Some("alice"));
        for (access, topic, expected) in table {
            assert_eq!(
                grants.allows(*access, topic),
                *expected,
                "{access:?} {topic:?} under {scopes:?}"
            );
        }
    }

    #[test]
    fn every_write_and_read_scope_counts_not_just_the_first() {
        check_table(
            "openid mqtt:write:a/# mqtt:write:b/+ mqtt:read:c/# mqtt:read:d",
            &[
                (Access::Write, "a/1", true),
                (Access::Write, "b/1", true),
                (Access::Write, "c/1", false),
                (Access::Read, "c/1/2", true),
                (Access::Read, "d", true),
                (Access::Read, "a/1", false),
                (Access::Subscribe, "d", true),
                (Access::Subscribe, "c/#", true),
            ],
        );
    }

    #[test]
    fn write_grants_do_not_imply_read_and_read_grants_do_not_imply_write() {
        check_table(
            "mqtt:write:w/# mqtt:read:r/#",
            &[
                (Access::Write, "w/x", true),
                (Access::Read, "w/x", false),
                (Access::Subscribe, "w/x", false),
                (Access::Read, "r/x", true),
                (Access::Write, "r/x", false),
            ],
        );
    }

    #[test]
    fn topics_are_matched_as_bytes_like_mosquitto_and_filters_must_be_utf8() {
        let grants = session("mqtt:write:devices/é/# mqtt:read:devices/+/state", "dev1", None);
        let cases: &[(Access, &[u8], bool)] = &[
            (Access::Write, "devices/é/x".as_bytes(), true),
            // `é` is 0xC3 0xA9: a topic sharing only its first byte is another level.
            (Access::Write, b"devices/\xC3/x", false),
            (Access::Write, b"devices/\xC3\xA9/\xFF", true),
            (Access::Read, b"devices/\xFF\xFE/state", true),
            (Access::Read, b"devices/a/b/state", false),
            (Access::Subscribe, b"devices/+/state", true),
            (Access::Subscribe, b"devices/\xFF/state", false),
        ];
        for (access, topic, expected) in cases {
            assert_eq!(grants.allows(*access, topic), *expected, "{access:?} {topic:?}");
        }
    }

    #[test]
    fn full_topic_charset_is_accepted_in_scopes() {
        check_table(
            "mqtt:write:devices/wildcat/#",
            &[
                (Access::Write, "devices/wildcat/temp reading", true),
                (Access::Write, "devices/wildcat/a:b/ünï/€", true),
                (Access::Write, "devices/wildcat", true),
                (Access::Write, "devices/wildcats", false),
            ],
        );
        check_table("mqtt:read:site:1/ünï/+", &[(Access::Read, "site:1/ünï/x y", true)]);
    }

    #[test]
    fn subscribe_requires_containment_within_a_read_grant() {
        check_table(
            "mqtt:read:devices/a/#",
            &[
                (Access::Subscribe, "devices/a/#", true),
                (Access::Subscribe, "devices/a/+/state", true),
                (Access::Subscribe, "devices/#", false),
                (Access::Subscribe, "#", false),
                (Access::Subscribe, "devices/+/x", false),
            ],
        );
    }

    #[test]
    fn shared_subscriptions_are_checked_on_the_inner_filter() {
        check_table(
            "mqtt:read:devices/a/#",
            &[
                (Access::Subscribe, "$share/g/devices/a/#", true),
                (Access::Subscribe, "$share/g/devices/#", false),
                (Access::Subscribe, "$share/g", false),
                (Access::Subscribe, "$share//devices/a/#", false),
            ],
        );
    }

    #[test]
    fn dollar_topics_need_an_explicit_dollar_grant() {
        check_table(
            "mqtt:read:# mqtt:write:#",
            &[
                (Access::Subscribe, "$SYS/#", false),
                (Access::Read, "$SYS/broker/uptime", false),
                (Access::Write, "$CONTROL/x", false),
                (Access::Read, "a/$b", true),
            ],
        );
        check_table(
            "mqtt:read:$SYS/#",
            &[
                (Access::Subscribe, "$SYS/broker/#", true),
                (Access::Read, "$SYS/broker/uptime", true),
            ],
        );
    }

    #[test]
    fn an_empty_topic_name_is_never_allowed_though_wildcards_match_it() {
        assert!(topic::matches("#", "") && topic::matches("+", ""));
        check_table(
            "mqtt:read:# mqtt:write:# mqtt:read:+ mqtt:write:+",
            &[(Access::Write, "", false), (Access::Read, "", false), (Access::Write, "a", true)],
        );
    }

    #[test]
    fn unsubscribe_is_always_allowed() {
        check_table("", &[(Access::Unsubscribe, "anything/#", true)]);
    }

    #[test]
    fn no_scopes_means_no_rights() {
        check_table(
            "",
            &[
                (Access::Write, "a", false),
                (Access::Read, "a", false),
                (Access::Subscribe, "a", false),
            ],
        );
        assert!(Grants::from_scopes(["openid", "profile"], "mqtt:").is_empty());
    }

    #[test]
    fn malformed_scope_filters_are_ignored_never_widened() {
        let grants = Grants::from_scopes(
            ["mqtt:write:a/#/b", "mqtt:write:", "mqtt:write:x+", "mqtt:read:a#", "mqtt:write:ok"],
            "mqtt:",
        )
        .resolve("c", None);
        assert_eq!(grants.write_filters().len(), 1);
        assert!(grants.read_filters().is_empty());
        assert!(grants.allows(Access::Write, "ok"));
        assert!(!grants.allows(Access::Write, "a/x/b"));
        assert!(!grants.allows(Access::Write, "x+"));
    }

    #[test]
    fn unknown_actions_and_other_prefixes_grant_nothing() {
        let grants =
            Grants::from_scopes(["mqtt:publish:#", "mqtt:subscribe:#", "other:write:#"], "mqtt:");
        assert!(grants.is_empty());
        let custom = Grants::from_scopes(["iot/write:#"], "iot/").resolve("c", None);
        assert!(custom.allows(Access::Write, "x"));
    }

    #[test]
    fn client_id_placeholder_is_replaced_by_the_client_id() {
        let grants =
            session("mqtt:write:devices/%c/# mqtt:read:users/%u/inbox", "dev1", Some("alice"));
        assert!(grants.allows(Access::Write, "devices/dev1/temp"));
        assert!(!grants.allows(Access::Write, "devices/dev2/temp"));
        assert!(!grants.allows(Access::Write, "devices/%c/temp"));
        assert!(grants.allows(Access::Read, "users/alice/inbox"));
        assert!(!grants.allows(Access::Read, "users/bob/inbox"));
    }

    #[test]
    fn placeholders_are_refused_for_ids_and_usernames_with_topic_syntax() {
        for bad in ["+", "#", "a/b", "x+y", ""] {
            let grants = session("mqtt:write:devices/%c/# mqtt:write:fixed", bad, None);
            assert_eq!(grants.write_filters().len(), 1, "client id {bad:?}");
            assert!(!grants.allows(Access::Write, "devices/x/y"), "client id {bad:?}");
            assert!(grants.allows(Access::Write, "fixed"));
            let by_user = session("mqtt:read:u/%u", "ok", Some(bad));
            assert!(by_user.read_filters().is_empty(), "username {bad:?}");
        }
        assert!(session("mqtt:read:u/%u", "ok", None).read_filters().is_empty());
    }

    #[test]
    fn placeholder_values_are_not_expanded_again() {
        let grants = Grants::from_scopes(["mqtt:write:t/%u/d/%c/#", "mqtt:write:p%x/%c"], "mqtt:")
            .resolve("%u", Some("alice"));
        assert!(grants.allows(Access::Write, "t/alice/d/%u/x"));
        assert!(!grants.allows(Access::Write, "t/alice/d/alice/x"));
        assert!(grants.allows(Access::Write, "p%x/%u"));
    }

    #[test]
    fn duplicate_scopes_are_kept_once() {
        let grants =
            Grants::from_scopes(["mqtt:read:a", "mqtt:read:a"], "mqtt:").resolve("c", None);
        assert_eq!(grants.read_filters().len(), 1);
    }
}
