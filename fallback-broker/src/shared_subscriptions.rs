//! Shared subscriptions (`$share/<group>/<filter>`, MQTT 5 and, as Mosquitto accepts them,
//! 3.1.1): each message matching a group's filter goes to one member of the group.
//!
//! rmqtt 0.24 parses `$share/...` only when its `SharedSubscription` extension says it is
//! supported, and the extension it installs says not and picks nobody: a `$share/...` filter
//! was then subscribed literally (granted, and never matched) while CONNACK announced shared
//! subscriptions as available. This one turns them on and picks members round robin, online
//! members first, as Mosquitto does. The subscription itself is checked by the policy like any
//! other (the group prefix is stripped, the filter must lie within a read grant), and every
//! delivery by the read check.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
    TopicName,
};

/// Round-robin choice among a group's members.
#[derive(Debug, Default)]
pub struct RoundRobin {
    turn: AtomicUsize,
}

/// One member of a shared group as the engine lists it.
type Member =
    (NodeId, ClientId, SubscriptionOptions, Option<Vec<SubscriptionIdentifier>>, Option<IsOnline>);

/// The member to deliver to at `turn`, among those online if any is (a message for a group
/// whose members are all offline goes to an offline one's session queue); `None` for no members.
fn pick(online: &[bool], turn: usize) -> Option<usize> {
    let candidates: Vec<usize> = if online.contains(&true) {
        (0..online.len()).filter(|&i| online[i]).collect()
    } else {
        (0..online.len()).collect()
    };
    candidates.get(turn % candidates.len().max(1)).copied()
}

#[async_trait]
impl SharedSubscription for RoundRobin {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _: &ServerContext,
        _: &SharedGroup,
        _: &Id,
        _: &TopicName,
        members: &[Member],
    ) -> Option<(usize, IsOnline)> {
        let online: Vec<bool> = members.iter().map(|member| member.4 == Some(true)).collect();
        let chosen = pick(&online, self.turn.fetch_add(1, Ordering::Relaxed))?;
        Some((chosen, online[chosen]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_group_members_take_turns_online_ones_first() {
        // (online flags, turns 0.., expected picks)
        let cases: [(&[bool], &[Option<usize>]); 4] = [
            (&[true, true, true], &[Some(0), Some(1), Some(2), Some(0)]),
            (&[false, true, false, true], &[Some(1), Some(3), Some(1)]),
            (&[false, false], &[Some(0), Some(1), Some(0)]),
            (&[], &[None, None]),
        ];
        for (online, expected) in cases {
            let picks: Vec<Option<usize>> =
                (0..expected.len()).map(|turn| pick(online, turn)).collect();
            assert_eq!(picks, expected, "{online:?}");
        }
    }
}
