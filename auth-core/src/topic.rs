//! MQTT topic names and topic filters: validation, matching and filter containment.
//!
//! The rules mirror Mosquitto's own (`mosquitto_topic_matches_sub` and its ACL checks):
//! - `+` matches exactly one level (an empty level too), `#` matches the rest, including the
//!   parent level (`a/#` matches `a`);
//! - a topic starting with `$` is never matched by a filter whose first level is a wildcard;
//! - any other character is an ordinary character (UTF-8, spaces, `:` and so on).

use std::fmt;

use compact_str::CompactString;

/// Longest topic or filter MQTT can carry (a two-byte length prefix).
pub const MAX_LEN: usize = 65_535;

/// Why a string is not a valid topic filter or topic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Zero-length filters and topics are not allowed.
    #[error("is empty")]
    Empty,
    /// Longer than MQTT's 65535-byte limit.
    #[error("is longer than 65535 bytes")]
    TooLong,
    /// U+0000 is forbidden in MQTT strings.
    #[error("contains a NUL character")]
    Nul,
    /// `#` must be the last level and stand alone in it.
    #[error("has '#' that is not a whole last level")]
    MisplacedMultiLevel,
    /// `+` must stand alone in its level.
    #[error("has '+' that is not a whole level")]
    MisplacedSingleLevel,
    /// A topic name (as opposed to a filter) may not contain wildcards.
    #[error("contains a wildcard")]
    WildcardInTopic,
    /// A `$share/<group>/<filter>` subscription with an empty or wildcard group, or no filter.
    #[error("is a malformed shared subscription")]
    MalformedShare,
}

fn check_common(text: &str) -> Result<(), TopicError> {
    if text.is_empty() {
        Err(TopicError::Empty)
    } else if text.len() > MAX_LEN {
        Err(TopicError::TooLong)
    } else if text.contains('\0') {
        Err(TopicError::Nul)
    } else {
        Ok(())
    }
}

/// Checks a topic filter (what a client subscribes to, or what a scope grants).
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevel);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevel);
        }
    }
    Ok(())
}

/// Checks a topic name (what a client publishes to or receives on).
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_common(topic)?;
    if topic.contains(['+', '#']) { Err(TopicError::WildcardInTopic) } else { Ok(()) }
}

/// Removes a `$share/<group>/` prefix, returning the filter that decides what is delivered.
/// Filters that are not shared subscriptions come back unchanged.
pub fn strip_shared_prefix(filter: &str) -> Result<&str, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return Ok(filter);
    };
    let (group, inner) = rest.split_once('/').ok_or(TopicError::MalformedShare)?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Err(TopicError::MalformedShare);
    }
    Ok(inner)
}

/// True when `filter` matches `topic`. Both must be valid; invalid input never panics but the
/// answer is then unspecified.
///
/// Works on bytes in one pass (no level iterators): this runs for every grant on every publish
/// and delivery. The topic is taken as bytes, as Mosquitto's own matcher takes it: `/`, `+`
/// and `#` never occur inside a multi-byte UTF-8 sequence, so matching the bytes of a valid
/// topic is matching its text, and a broker's topic need not be validated again per check.
pub fn matches(filter: &str, topic: impl AsRef<[u8]>) -> bool {
    let (filter, topic) = (filter.as_bytes(), topic.as_ref());
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let (mut f, mut t) = (0, 0);
    loop {
        // Both positions are at the start of a level.
        match filter.get(f) {
            Some(b'#') => return true,
            Some(b'+') => {
                while t < topic.len() && topic[t] != b'/' {
                    t += 1;
                }
                f += 1;
            }
            _ => {
                while f < filter.len() && filter[f] != b'/' {
                    if topic.get(t) != Some(&filter[f]) {
                        return false;
                    }
                    f += 1;
                    t += 1;
                }
                if t < topic.len() && topic[t] != b'/' {
                    return false;
                }
            }
        }
        // Both positions are at a '/' or at the end.
        match (f < filter.len(), t < topic.len()) {
            (false, false) => return true,
            (true, true) => {
                f += 1;
                t += 1;
            }
            // `a/#` also matches `a`.
            (true, false) => return &filter[f..] == b"/#",
            (false, true) => return false,
        }
    }
}

/// True when every topic matched by `inner` is also matched by `outer` (filter within filter).
///
/// This is the SUBSCRIBE rule: a grant `devices/a/#` admits a subscription to `devices/a/+`
/// but not to `devices/#`, because the latter would also deliver `devices/b/...`.
pub fn filter_contains(outer: &str, inner: &str) -> bool {
    // `inner` starting with a literal `$` level only matches `$` topics, which a leading
    // wildcard in `outer` never matches.
    if inner.starts_with('$') && outer.starts_with(['+', '#']) {
        return false;
    }
    let mut outer_levels = outer.split('/');
    let mut inner_levels = inner.split('/');
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (Some("#"), _) => return true,
            // A final `#` also matches its parent topic, which `+/#` in its place does not;
            // unless that parent is no topic at all (`#`, `/#`: zero levels or the empty
            // string), and then both match exactly the same topics.
            (Some("+"), Some("#")) => {
                let parent = &inner[..inner.len().saturating_sub(2)];
                return parent.is_empty() && outer_levels.eq(["#"]);
            }
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(o), Some(i)) if o == i => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A validated topic filter, with what matching needs precomputed.
#[derive(Clone, PartialEq, Eq)]
pub struct Filter {
    /// Inline up to 24 bytes (most grants): matching reads it without a pointer chase.
    text: CompactString,
    has_wildcards: bool,
    /// Length of the literal part every matching topic starts with (before the first wildcard
    /// level, without the `/` in front of a final `#`): most non-matching grants are rejected
    /// by one `memcmp` of it. (`u16`: filters are at most 65535 bytes, and a filter is kept
    /// per grant of every cached token.)
    literal_prefix: u16,
    /// The filter is its literal prefix plus `/#` (`devices/a/#`, the commonest grant): a topic
    /// starting with the prefix matches when a level boundary follows, without a level walk.
    literal_then_hash: bool,
}

impl Filter {
    /// Validates and wraps a filter.
    pub fn parse(text: &str) -> Result<Self, TopicError> {
        validate_filter(text)?;
        let wildcard = text.find(['+', '#']);
        let literal_prefix = match wildcard {
            None => text.len(),
            Some(at) if text[at..].starts_with('#') => at.saturating_sub(1),
            Some(at) => at,
        };
        let literal_then_hash =
            wildcard.is_some_and(|at| at >= 2 && at + 1 == text.len()) && text.ends_with("/#");
        let literal_prefix = u16::try_from(literal_prefix).map_err(|_| TopicError::TooLong)?;
        Ok(Self {
            text: CompactString::new(text),
            has_wildcards: wildcard.is_some(),
            literal_prefix,
            literal_then_hash,
        })
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when this filter matches `topic` (its bytes, see [`matches`](fn@matches)).
    #[inline]
    pub fn matches(&self, topic: impl AsRef<[u8]>) -> bool {
        let topic = topic.as_ref();
        if !self.has_wildcards {
            return *self.text.as_bytes() == *topic;
        }
        let prefix = &self.text.as_bytes()[..usize::from(self.literal_prefix)];
        if !topic.starts_with(prefix) {
            return false;
        }
        if self.literal_then_hash {
            // `a/#` matches `a` and everything below it.
            return topic.get(prefix.len()).is_none_or(|next| *next == b'/');
        }
        matches(&self.text, topic)
    }

    /// True when every topic matched by `inner` is matched by this filter.
    pub fn contains(&self, inner: &str) -> bool {
        if self.has_wildcards { filter_contains(&self.text, inner) } else { *self.text == *inner }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({:?})", self.text)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_validation_follows_mqtt_wildcard_placement_rules() {
        let cases: &[(&str, Result<(), TopicError>)] = &[
            ("#", Ok(())),
            ("+", Ok(())),
            ("a/+/b", Ok(())),
            ("a/#", Ok(())),
            ("+/+/#", Ok(())),
            ("/", Ok(())),
            ("a//b", Ok(())),
            ("devices/wildcat/#", Ok(())),
            ("with space/and:colon/ünïcode", Ok(())),
            ("$SYS/#", Ok(())),
            ("", Err(TopicError::Empty)),
            ("a/#/b", Err(TopicError::MisplacedMultiLevel)),
            ("a#", Err(TopicError::MisplacedMultiLevel)),
            ("a/b#", Err(TopicError::MisplacedMultiLevel)),
            ("a+/b", Err(TopicError::MisplacedSingleLevel)),
            ("a/+b", Err(TopicError::MisplacedSingleLevel)),
            ("a\0b", Err(TopicError::Nul)),
        ];
        for (filter, expected) in cases {
            assert_eq!(validate_filter(filter), *expected, "filter {filter:?}");
        }
        assert_eq!(validate_filter(&"a".repeat(MAX_LEN + 1)), Err(TopicError::TooLong));
    }

    #[test]
    fn topic_names_may_not_contain_wildcards() {
        assert_eq!(validate_topic("a/b c/ä:x"), Ok(()));
        assert_eq!(validate_topic("a/+"), Err(TopicError::WildcardInTopic));
        assert_eq!(validate_topic("a/#"), Err(TopicError::WildcardInTopic));
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
    }

    #[test]
    fn matching_follows_mosquitto_topic_matches_sub() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "a/b/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("a/#", "a/", true),
            ("a/b/#", "a/b", true),
            ("a/b/#", "a/bc/d", false),
            ("a/b/#", "a", false),
            ("$SYS/#", "$SYS/broker", true),
            ("a/+/#", "a/b", true),
            ("#", "a/b", true),
            ("#", "/", true),
            ("+/+", "/", true),
            ("+", "/", false),
            ("/#", "/a", true),
            ("+/b", "a/b", true),
            ("devices/+/state", "devices/wildcat/state", true),
            ("a b/:c", "a b/:c", true),
            ("ü/+", "ü/x", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
            let compiled = Filter::parse(filter).expect("valid");
            assert_eq!(compiled.matches(topic), *expected, "compiled {filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn dollar_topics_are_never_matched_by_a_leading_wildcard() {
        let cases: &[(&str, &str, bool)] = &[
            ("#", "$SYS/broker/uptime", false),
            ("+/broker/uptime", "$SYS/broker/uptime", false),
            ("+/#", "$SYS/x", false),
            ("$SYS/#", "$SYS/broker/uptime", true),
            ("$SYS/+/uptime", "$SYS/broker/uptime", true),
            ("a/#", "a/$x", true),
            ("#", "a/$x", true),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(matches(filter, topic), *expected, "{filter:?} vs {topic:?}");
        }
    }

    #[test]
    fn subscribe_filter_must_lie_within_the_granted_filter() {
        let cases: &[(&str, &str, bool)] = &[
            ("devices/a/#", "devices/a/#", true),
            ("devices/a/#", "devices/a", true),
            ("devices/a/#", "devices/a/+/state", true),
            ("devices/a/#", "devices/#", false),
            ("devices/a/#", "devices/+/x", false),
            ("devices/+/state", "devices/a/state", true),
            ("devices/+/state", "devices/+/state", true),
            ("devices/+/state", "devices/#", false),
            ("devices/+/state", "devices/+/#", false),
            ("a/+", "a/#", false),
            ("a/+/#", "a/#", false),
            ("+/#", "#", true),
            ("+/#", "+/#", true),
            ("x/+/#", "x/#", false),
            ("/+/#", "/#", true),
            ("+/#", "/#", true),
            ("+/+/#", "+/#", false),
            ("//+/#", "//#", false),
            ("a/+/#", "a/+", true),
            ("a/b", "a/+", false),
            ("a/b", "a/b", true),
            ("a", "a/#", false),
            ("#", "#", true),
            ("#", "+/x/#", true),
            ("#", "$SYS/#", false),
            ("+/#", "$SYS/broker", false),
            ("$SYS/#", "$SYS/broker/+", true),
            ("$SYS/#", "#", false),
            ("+", "+", true),
            ("+", "#", false),
        ];
        for (outer, inner, expected) in cases {
            assert_eq!(filter_contains(outer, inner), *expected, "{outer:?} ⊇ {inner:?}");
            let compiled = Filter::parse(outer).expect("valid");
            assert_eq!(compiled.contains(inner), *expected, "compiled {outer:?} ⊇ {inner:?}");
        }
    }

    #[test]
    fn shared_subscription_prefix_is_stripped_before_checking() {
        assert_eq!(strip_shared_prefix("$share/g1/devices/#"), Ok("devices/#"));
        assert_eq!(strip_shared_prefix("devices/#"), Ok("devices/#"));
        assert_eq!(strip_shared_prefix("$shared/x"), Ok("$shared/x"));
        assert_eq!(strip_shared_prefix("$share/g1"), Err(TopicError::MalformedShare));
        assert_eq!(strip_shared_prefix("$share//a"), Err(TopicError::MalformedShare));
        assert_eq!(strip_shared_prefix("$share/+/a"), Err(TopicError::MalformedShare));
        assert_eq!(strip_shared_prefix("$share/g/"), Err(TopicError::MalformedShare));
    }
}
