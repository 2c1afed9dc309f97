//! Topic filter validation, matching and containment.
//!
//! Input: `<filter>\n<topic>\n<inner filter>` (UTF-8, lossy; missing parts are empty).
//!
//! Checks: nothing panics; `Filter` agrees with the free functions; containment is reflexive;
//! a topic name, taken as a filter, is contained exactly when it is matched; containment never
//! admits a topic the outer filter does not match.

use oauth_core::topic::{self, Filter};

/// Runs one input through the checks; panics on a violation.
pub(crate) fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let filter = parts.next().unwrap_or("");
    let topic = parts.next().unwrap_or("");
    let inner = parts.next().unwrap_or("");
    let _ = topic::strip_shared_prefix(filter);

    let filter_ok = topic::validate_filter(filter).is_ok();
    let topic_ok = topic::validate_topic(topic).is_ok();
    let inner_ok = topic::validate_filter(inner).is_ok();
    assert_eq!(Filter::parse(filter).is_ok(), filter_ok);
    if topic_ok {
        assert!(topic::validate_filter(topic).is_ok(), "topic {topic:?} is not a valid filter");
    }
    if !filter_ok {
        // Unspecified answers, but they must come back.
        let _ = topic::matches(filter, topic);
        let _ = topic::filter_contains(filter, inner);
        return;
    }

    let compiled = Filter::parse(filter).expect("validated");
    assert_eq!(compiled.as_str(), filter);
    assert!(topic::filter_contains(filter, filter), "{filter:?} does not contain itself");
    assert!(compiled.contains(filter), "compiled {filter:?} does not contain itself");

    if topic_ok {
        let matched = topic::matches(filter, topic);
        assert_eq!(compiled.matches(topic), matched, "{filter:?} vs {topic:?}");
        assert_eq!(topic::filter_contains(filter, topic), matched, "{filter:?} ⊇ {topic:?}");
    }
    if inner_ok {
        let contains = topic::filter_contains(filter, inner);
        assert_eq!(compiled.contains(inner), contains, "compiled {filter:?} ⊇ {inner:?}");
        if contains && topic_ok && topic::matches(inner, topic) {
            assert!(topic::matches(filter, topic), "{filter:?} ⊇ {inner:?} but misses {topic:?}");
        }
        if contains && topic::filter_contains(inner, filter) {
            // Mutual containment: the two filters match the same topics.
            if topic_ok {
                assert_eq!(topic::matches(filter, topic), topic::matches(inner, topic));
            }
        }
    }
}
