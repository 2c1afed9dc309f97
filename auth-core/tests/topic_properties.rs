//! Property tests for topic matching, filter containment and the ACL decision, checked against a
//! deliberately naive reference implementation written here (level lists, recursion, and brute
//! force over a finite universe of topics).
#![allow(clippy::unwrap_used)]

use oauth_core::topic::{self, Filter};
use oauth_core::{Access, Grants, SessionGrants};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Reference implementation
// ---------------------------------------------------------------------------------------------

fn levels(text: &str) -> Vec<&str> {
    text.split('/').collect()
}

fn is_wildcard(level: &str) -> bool {
    level == "+" || level == "#"
}

/// MQTT matching, level by level: `+` takes exactly one level, `#` (always last) takes the rest,
/// including none at all (the parent level). A topic whose first level starts with `$` is never
/// matched by a filter whose first level is a wildcard.
fn reference_matches_levels(filter: &[&str], topic: &[&str]) -> bool {
    if topic.first().is_some_and(|t| t.starts_with('$'))
        && filter.first().is_some_and(|f| is_wildcard(f))
    {
        return false;
    }
    fn rest(filter: &[&str], topic: &[&str]) -> bool {
        match (filter.split_first(), topic.split_first()) {
            (None, None) => true,
            (Some((&"#", _)), _) => true,
            (Some((&"+", f)), Some((_, t))) => rest(f, t),
            (Some((fl, f)), Some((tl, t))) => fl == tl && rest(f, t),
            _ => false,
        }
    }
    rest(filter, topic)
}

fn reference_matches(filter: &str, topic: &str) -> bool {
    reference_matches_levels(&levels(filter), &levels(topic))
}

/// Filter syntax: non-empty, `+` only as a whole level, `#` only as a whole last level.
fn reference_valid_filter(filter: &str) -> bool {
    let all = levels(filter);
    !filter.is_empty()
        && all.iter().enumerate().all(|(i, level)| {
            let hash_ok = !level.contains('#') || (*level == "#" && i + 1 == all.len());
            let plus_ok = !level.contains('+') || *level == "+";
            hash_ok && plus_ok
        })
}

/// A literal level that no generated filter or topic uses, and its `$` twin for the first level.
const FRESH: &str = "fresh";
const FRESH_DOLLAR: &str = "$fresh";

/// Every topic (as level lists) of 1..=`depth` levels over `alphabet`, minus the empty topic.
fn universe<'a>(alphabet: &[&'a str], depth: usize) -> Vec<Vec<&'a str>> {
    let mut all = Vec::new();
    let mut layer: Vec<Vec<&'a str>> = vec![Vec::new()];
    for _ in 0..depth {
        layer = layer
            .iter()
            .flat_map(|prefix| {
                alphabet.iter().map(move |level| {
                    let mut next = prefix.clone();
                    next.push(level);
                    next
                })
            })
            .collect();
        all.extend(layer.iter().filter(|t| *t != &[""]).cloned());
    }
    all
}

/// Containment by brute force: every topic `inner` matches is matched by `outer`.
///
/// The finite universe is exact. Matching only ever compares a topic level for equality with a
/// filter literal, and looks at whether the first level starts with `$`. So in any topic that
/// `inner` matches and `outer` does not, each level that is not a literal of either filter can
/// be replaced by `FRESH` (or `FRESH_DOLLAR` for a `$` first level) without changing either
/// answer. And it can be cut to `max(len) + 1` levels: longer topics are matched by `inner` only
/// through a trailing `#`, which still matches the cut topic, and `outer` rejects the cut topic
/// for the same reason it rejected the long one (a mismatch within its first levels, or being
/// too short for a longer topic without `#`).
fn brute_force_contains(outer: &str, inner: &str) -> bool {
    let (outer, inner) = (levels(outer), levels(inner));
    let mut alphabet: Vec<&str> =
        outer.iter().chain(&inner).copied().filter(|level| !is_wildcard(level)).collect();
    alphabet.extend([FRESH, FRESH_DOLLAR]);
    alphabet.sort_unstable();
    alphabet.dedup();
    universe(&alphabet, outer.len().max(inner.len()) + 1).iter().all(|topic| {
        !reference_matches_levels(&inner, topic) || reference_matches_levels(&outer, topic)
    })
}

/// The one pair on which the level-by-level `filter_contains` is stricter than the truth: at
/// the root, `+/#` matches exactly what `#` matches (every topic has at least one level, and
/// neither matches `$` topics), yet `filter_contains("+/#", "#")` is false. Conservative (it can
/// only refuse a subscription a grant would permit), so the properties below accept either
/// answer for it.
fn known_conservative_gap(outer: &str, inner: &str) -> bool {
    outer == "+/#" && inner == "#"
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

const LITERALS: &[&str] = &["", "a", "b", "$SYS"];
const MAX_LEVELS: usize = 4;

fn literal() -> impl Strategy<Value = &'static str> {
    prop::sample::select(LITERALS)
}

/// Topic names: literal levels only (plus a `$` level the filters never use).
fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(&["", "a", "b", "$SYS", "$x", "c"][..]),
        1..=MAX_LEVELS,
    )
    .prop_map(|levels| levels.join("/"))
    .prop_filter("a topic is not empty", |t| !t.is_empty())
}

/// Valid filters: literals and `+` at any level, optionally a final `#`.
fn valid_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => literal(), 1 => Just("+")];
    (prop::collection::vec(level, 0..=MAX_LEVELS), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.truncate(MAX_LEVELS - 1);
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |f| !f.is_empty())
}

/// Pairs biased towards sharing a prefix, so containment is often true (not only trivially
/// false at the first level).
fn filter_pair() -> impl Strategy<Value = (String, String)> {
    (valid_filter(), valid_filter(), any::<bool>(), 0..=2usize).prop_map(
        |(outer, inner, share_prefix, keep)| {
            if !share_prefix {
                return (outer, inner);
            }
            let outer_levels = levels(&outer);
            let prefix: Vec<&str> =
                outer_levels.iter().copied().take(keep).filter(|l| *l != "#").collect();
            let mut joined = prefix;
            joined.extend(levels(&inner));
            let inner = joined.join("/");
            let inner = if reference_valid_filter(&inner) { inner } else { outer.clone() };
            (outer, inner)
        },
    )
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn matching_agrees_with_reference_matcher(filter in valid_filter(), topic in topic_name()) {
        prop_assert_eq!(
            topic::matches(&filter, &topic),
            reference_matches(&filter, &topic),
            "filter {:?} topic {:?}", filter, topic
        );
    }

    #[test]
    fn compiled_filter_matches_like_the_free_function(
        filter in valid_filter(),
        topic in topic_name(),
    ) {
        let compiled = Filter::parse(&filter).unwrap();
        prop_assert_eq!(compiled.as_str(), filter.as_str());
        prop_assert_eq!(compiled.matches(&topic), topic::matches(&filter, &topic));
    }

    #[test]
    fn containment_agrees_with_brute_force_over_all_topics((outer, inner) in filter_pair()) {
        let core = topic::filter_contains(&outer, &inner);
        let truth = brute_force_contains(&outer, &inner);
        if known_conservative_gap(&outer, &inner) {
            // Either answer is safe here; a fix that recognises the equivalence is welcome.
            prop_assert!(truth);
        } else {
            prop_assert_eq!(core, truth, "outer {:?} inner {:?}", outer, inner);
        }
    }

    #[test]
    fn containment_never_admits_a_topic_the_outer_filter_rejects(
        (outer, inner) in filter_pair(),
        topic in topic_name(),
    ) {
        if topic::filter_contains(&outer, &inner) && topic::matches(&inner, &topic) {
            prop_assert!(
                topic::matches(&outer, &topic),
                "{outer:?} ⊇ {inner:?} but not {topic:?}"
            );
        }
    }

    #[test]
    fn containment_is_reflexive(filter in valid_filter()) {
        prop_assert!(topic::filter_contains(&filter, &filter));
    }

    #[test]
    fn compiled_filter_contains_like_the_free_function((outer, inner) in filter_pair()) {
        let compiled = Filter::parse(&outer).unwrap();
        prop_assert_eq!(compiled.contains(&inner), topic::filter_contains(&outer, &inner));
    }

    #[test]
    fn filter_validation_accepts_exactly_whole_level_wildcards(
        filter in "[a/+#$]{0,10}",
    ) {
        prop_assert_eq!(
            topic::validate_filter(&filter).is_ok(),
            reference_valid_filter(&filter),
            "filter {:?}", filter
        );
        prop_assert_eq!(Filter::parse(&filter).is_ok(), reference_valid_filter(&filter));
    }

    #[test]
    fn topic_validation_rejects_exactly_empty_and_wildcard_names(topic in "[a/+#$]{0,10}") {
        let expected = !topic.is_empty() && !topic.contains(['+', '#']);
        prop_assert_eq!(topic::validate_topic(&topic).is_ok(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// The ACL decision
// ---------------------------------------------------------------------------------------------

const CLIENT_ID: &str = "dev1";

/// Scope filters: valid ones (some with a `%c` level), and malformed ones that must be ignored.
fn scope_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => valid_filter(),
        1 => valid_filter().prop_map(|f| format!("%c/{f}")),
        1 => prop::sample::select(&["a#", "+a/b", "a/#/b", "", "#/#"][..]).prop_map(str::to_owned),
    ]
}

#[derive(Debug, Clone)]
struct Scopes {
    read: Vec<String>,
    write: Vec<String>,
}

impl Scopes {
    /// The grants as `Grants::from_scopes(..).resolve(..)` builds them for `CLIENT_ID`.
    fn session(&self) -> SessionGrants {
        let texts = self.texts();
        Grants::from_scopes(texts.iter().map(String::as_str), "mqtt:").resolve(CLIENT_ID, None)
    }

    fn texts(&self) -> Vec<String> {
        let mut texts = vec!["openid".to_owned(), "mqtt:publish:#".to_owned()];
        texts.extend(self.read.iter().map(|f| format!("mqtt:read:{f}")));
        texts.extend(self.write.iter().map(|f| format!("mqtt:write:{f}")));
        texts
    }

    /// What the grants should be once bound to `CLIENT_ID`: valid filters, `%c` filled in.
    fn resolved(filters: &[String]) -> Vec<String> {
        filters
            .iter()
            .filter(|f| reference_valid_filter(f))
            .map(|f| f.replace("%c", CLIENT_ID))
            .collect()
    }
}

fn scopes() -> impl Strategy<Value = Scopes> {
    (prop::collection::vec(scope_filter(), 0..4), prop::collection::vec(scope_filter(), 0..4))
        .prop_map(|(read, write)| Scopes { read, write })
}

fn acl_topic() -> impl Strategy<Value = String> {
    prop_oneof![4 => topic_name(), 1 => topic_name().prop_map(|t| format!("{CLIENT_ID}/{t}"))]
}

fn subscription() -> impl Strategy<Value = String> {
    let own = valid_filter().prop_map(|f| format!("{CLIENT_ID}/{f}"));
    let filter = prop_oneof![4 => valid_filter(), 1 => own];
    (filter, 0..4u8).prop_map(|(f, shape)| match shape {
        0 => format!("$share/g/{f}"),
        1 => format!("{f}#"), // mostly malformed, so never allowed
        _ => f,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn subscribe_is_allowed_only_within_a_read_grant(
        scopes in scopes(),
        wanted in subscription(),
    ) {
        let grants = scopes.session();
        let read = Scopes::resolved(&scopes.read);
        let inner = wanted.strip_prefix("$share/g/").unwrap_or(&wanted);
        let allowed = grants.allows(Access::Subscribe, &wanted);
        if !reference_valid_filter(inner) {
            prop_assert!(!allowed, "malformed {wanted:?} allowed");
            return Ok(());
        }
        if allowed {
            let contained = read.iter().any(|r| brute_force_contains(r, inner));
            prop_assert!(contained, "{wanted:?} allowed, but no read grant of {read:?} has it");
        }
        let should = read
            .iter()
            .any(|r| !known_conservative_gap(r, inner) && brute_force_contains(r, inner));
        if should {
            prop_assert!(allowed, "{wanted:?} refused, but a read grant of {read:?} contains it");
        }
    }

    #[test]
    fn write_is_allowed_exactly_when_a_write_filter_matches(
        scopes in scopes(),
        topic in acl_topic(),
    ) {
        let write = Scopes::resolved(&scopes.write);
        let expected = write.iter().any(|f| reference_matches(f, &topic));
        let allowed = scopes.session().allows(Access::Write, &topic);
        prop_assert_eq!(allowed, expected, "{:?} under {:?}", topic, write);
    }

    #[test]
    fn read_is_allowed_exactly_when_a_read_filter_matches(
        scopes in scopes(),
        topic in acl_topic(),
    ) {
        let read = Scopes::resolved(&scopes.read);
        let expected = read.iter().any(|f| reference_matches(f, &topic));
        let allowed = scopes.session().allows(Access::Read, &topic);
        prop_assert_eq!(allowed, expected, "{:?} under {:?}", topic, read);
    }
}

// ---------------------------------------------------------------------------------------------
// The reference itself
// ---------------------------------------------------------------------------------------------

#[test]
fn reference_implementation_agrees_with_hand_written_cases() {
    assert!(reference_matches("a/#", "a"));
    assert!(reference_matches("+/+", "/"));
    assert!(!reference_matches("+", "/"));
    assert!(!reference_matches("#", "$SYS/x"));
    assert!(reference_matches("$SYS/#", "$SYS"));
    assert!(brute_force_contains("a/#", "a/+/b"));
    assert!(!brute_force_contains("a/+", "a/#"));
    assert!(!brute_force_contains("a/b", "a/+"));
    assert!(!brute_force_contains("#", "$SYS/#"));
    assert!(brute_force_contains("+/#", "#"));
    assert!(reference_valid_filter("a/+/#"));
    assert!(!reference_valid_filter("a/#/b"));
    assert!(!reference_valid_filter("a+"));
}
