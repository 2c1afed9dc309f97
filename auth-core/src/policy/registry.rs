//! The clients a broker admitted with a token, for as long as it may still act for them, keyed
//! by an opaque host key: an identifier of the broker's client object that the broker may hand
//! to a later client once the object is freed (Mosquitto: the address of its `struct
//! mosquitto`).
//!
//! A broker may run a reconnecting client's login before the old connection's DISCONNECT,
//! decide wills and queued messages of a session after its DISCONNECT, and build throwaway
//! client objects for checks of its own (Mosquitto's retained-source checks). So an entry is
//! used only when the client id matches too; a login on a key replaces whatever was there;
//! DISCONNECT only marks the entry offline.
//!
//! **Ownership rule.** An entry answers for its client object for as long as the broker may
//! still act for that object, so that no other mechanism ever decides for a client admitted
//! with a token (by a username the client chose). A host that cannot read an MQTT 5 client's
//! Session Expiry or Will Delay Interval, nor learn when the broker frees a session, keeps an
//! entry until that is certain:
//! - a new login arrives on the same key: the broker freed the old object (its memory is
//!   reused), see [`Registry::forget_key`];
//! - a client that cannot outlive its connection (MQTT 3.1/3.1.1 clean session) has been
//!   disconnected (DISCONNECT seen) for a housekeeping round: its will was decided within that
//!   same DISCONNECT, and nothing else is left to do for it ([`Registry::purge`]).
//!
//! Every other entry stays, answering from its grants while its token is valid and denying
//! everything once it has expired or was revoked. Memory is bounded by the client objects the
//! broker ever held at once, since a freed object's key goes to the next one.
//!
//! Sans-I/O: no method blocks or calls the broker. What the broker must do (disconnect a
//! client) is returned, so a host carries it out after it released its borrow of the registry
//! (a broker may re-enter the ACL check while it disconnects a client).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use super::{AclTally, AclVerdict, RoundToken, TokenClient};
use crate::{Access, Metrics, TokenDigest};

/// One admitted client object: the core's record and what the host's lifecycle adds.
///
/// Boxed in the table: hashbrown doubles its buckets, so just past a power of two half of them
/// are empty, and an empty bucket costs the size of its value. Inline entries (about 170 bytes)
/// made the table the largest per-client cost (5.8 MB for 15 000 clients, a table of 32 768
/// buckets); boxed, an empty bucket costs 16 bytes, for one more pointer to follow per check.
#[derive(Debug)]
pub struct Entry {
    client: TokenClient,
    /// The broker may act for this client after its connection ends, beyond the will check it
    /// makes at once: a durable session, or an MQTT 5 client.
    outlives_connection: bool,
    /// The host reported the end of this object's connection.
    disconnect_seen: bool,
}

impl Entry {
    /// The core's record: grants, expiry, token, revoked mark, when it left.
    #[inline]
    pub fn client(&self) -> &TokenClient {
        &self.client
    }

    /// Offline from `now`. The token goes: only online sessions are revalidated.
    fn go_offline(&mut self, now: u64) {
        self.client.left(now);
        self.client.release_recheck();
    }

    /// True when the broker can no longer act for this object (see the ownership rule).
    fn is_finished(&self) -> bool {
        self.disconnect_seen && !self.outlives_connection
    }
}

/// The answer to an ACL check of a registered key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Allowed by the client's grants.
    Allow,
    /// Denied (no grant, token expired or revoked).
    Deny,
    /// Not a client admitted with a token: other mechanisms decide.
    NotOurs,
}

/// The admitted clients of one broker (or plugin instance), their expiry queue and the
/// disconnections due. `S` hashes keys (a host with cheap, unique keys may skip SipHash).
#[derive(Debug)]
pub struct Registry<K, S = std::collections::hash_map::RandomState> {
    entries: HashMap<K, Box<Entry>, S>,
    /// Latest key per client id: the current connection of that id.
    latest: HashMap<Box<str>, K>,
    /// (exp, key) of every session opened, soonest first; stale items are skipped.
    expiries: BinaryHeap<Reverse<(u64, K)>>,
    /// Keys an ACL check found expired while online, to disconnect at the next safe moment.
    pending_kicks: Vec<K>,
    /// ACL decisions since the last [`Registry::fold_counts`].
    tally: AclTally,
    disconnect_on_expiry: bool,
}

impl<K, S> Registry<K, S>
where
    K: Copy + Eq + Hash + Ord,
    S: BuildHasher + Default,
{
    /// An empty registry; `disconnect_on_expiry` (`oauth_disconnect_on_expiry`) makes expired
    /// online clients due for disconnection.
    pub fn new(disconnect_on_expiry: bool) -> Self {
        Self {
            entries: HashMap::default(),
            latest: HashMap::new(),
            expiries: BinaryHeap::new(),
            pending_kicks: Vec::new(),
            tally: AclTally::default(),
            disconnect_on_expiry,
        }
    }

    /// Forgets whatever was stored for this key: a new client object is logging in on it, so
    /// the one the entry was for has been freed.
    pub fn forget_key(&mut self, key: K) {
        if let Some(old) = self.entries.remove(&key) {
            self.forget_latest(old.client.client_id(), key);
        }
    }

    fn forget_latest(&mut self, client_id: &str, key: K) {
        if self.latest.get(client_id) == Some(&key) {
            self.latest.remove(client_id);
        }
    }

    /// Registers a client admitted at `now`. An older entry of the same client id (the
    /// connection being taken over) goes offline; it stays until its object is known to be gone.
    pub fn admit(&mut self, key: K, client: TokenClient, outlives_connection: bool, now: u64) {
        if let Some(exp) = client.session().expires_at() {
            self.expiries.push(Reverse((exp, key)));
        }
        if let Some(previous) = self.latest.insert(client.client_id().into(), key)
            && previous != key
            && let Some(old) = self.entries.get_mut(&previous)
        {
            old.go_offline(now);
        }
        self.entries
            .insert(key, Box::new(Entry { client, outlives_connection, disconnect_seen: false }));
    }

    /// The entry for this key, if it belongs to this client id.
    #[inline]
    pub fn get(&self, key: K, client_id: Option<&str>) -> Option<&Entry> {
        self.get_by(key, |id| Some(id) == client_id)
    }

    /// The entry for this key, if `is_client` recognises its client id.
    #[inline]
    pub fn get_by(&self, key: K, is_client: impl FnOnce(&str) -> bool) -> Option<&Entry> {
        let entry = self.entries.get(&key)?;
        is_client(entry.client.client_id()).then_some(entry)
    }

    /// The entry of this client object while its connection lasts (no DISCONNECT seen): a
    /// login for it is a re-check of a client already admitted, never a new object.
    pub fn live(&self, key: K, client_id: Option<&str>) -> Option<&Entry> {
        self.get(key, client_id).filter(|entry| !entry.disconnect_seen)
    }

    /// True when the entry at `key` is the online, current connection of its client id: the
    /// only kind of client worth disconnecting.
    fn is_current(&self, key: K, entry: &Entry) -> bool {
        entry.client.is_online() && self.latest.get(entry.client.client_id()) == Some(&key)
    }

    /// Decides an ACL check of the client at `key` at `now`, if the entry there is the one of
    /// the client `is_client` recognises by its id (counted, see [`Self::fold_counts`];
    /// denials logged). An expired online client found this way is due for disconnection
    /// ([`Self::due_kicks`]).
    #[inline]
    pub fn acl(
        &mut self,
        key: K,
        is_client: impl FnOnce(&str) -> bool,
        access: Access,
        topic: impl AsRef<[u8]>,
        now: u64,
    ) -> Answer {
        let Some(entry) = self.entries.get(&key).filter(|e| is_client(e.client.client_id())) else {
            return Answer::NotOurs;
        };
        match entry.client.check(access, topic, now, &mut self.tally) {
            AclVerdict::Allow => Answer::Allow,
            AclVerdict::Deny { expired_online } => {
                if expired_online && self.disconnect_on_expiry {
                    self.pending_kicks.push(key);
                }
                Answer::Deny
            }
        }
    }

    /// Adds the ACL decisions counted since the last call to `metrics` (call it before the
    /// counters are read).
    pub fn fold_counts(&mut self, metrics: &Metrics) {
        self.tally.fold_into(metrics);
    }

    /// Records the end of a connection at `now`: the entry stays for wills and queued
    /// messages. `client_id` `None` applies to whatever entry is at the key (Mosquitto 2.0
    /// clears the client id of a connection refused after its login).
    pub fn disconnected(&mut self, key: K, client_id: Option<&str>, now: u64) {
        if let Some(entry) = self.entries.get_mut(&key)
            && (client_id.is_none() || Some(entry.client.client_id()) == client_id)
        {
            entry.go_offline(now);
            entry.disconnect_seen = true;
        }
    }

    /// Revokes the entry of this client object (a failed re-authentication or re-check).
    pub fn revoke(&mut self, key: K, client_id: &str) {
        if let Some(entry) = self.entries.get(&key)
            && entry.client.client_id() == client_id
        {
            entry.client.revoke();
        }
    }

    /// Revokes every entry opened with the token of `digest`; returns the keys and client ids
    /// of those that are the current connection of their id, to disconnect.
    pub fn revoke_token(&mut self, digest: &TokenDigest) -> Vec<(K, Box<str>)> {
        let mut current = Vec::new();
        for (key, entry) in &self.entries {
            if entry.client.session().token_digest() == *digest {
                entry.client.revoke();
                if self.is_current(*key, entry) {
                    current.push((*key, entry.client.client_id().into()));
                }
            }
        }
        current
    }

    /// The clients due for disconnection at `now` because their token expired (from the
    /// expiry queue with `disconnect_on_expiry`, and those ACL checks found expired): each
    /// still the online, current connection of its id, each once.
    pub fn due_kicks(&mut self, now: u64) -> Vec<(K, Box<str>)> {
        if self.disconnect_on_expiry {
            while let Some(Reverse((exp, key))) = self.expiries.peek().copied() {
                if exp > now {
                    break;
                }
                self.expiries.pop();
                self.pending_kicks.push(key);
            }
        }
        if self.pending_kicks.is_empty() {
            return Vec::new();
        }
        let mut seen = HashSet::new();
        std::mem::take(&mut self.pending_kicks)
            .into_iter()
            .filter(|key| seen.insert(*key))
            .filter_map(|key| {
                let entry = self.entries.get(&key)?;
                (self.is_current(key, entry) && entry.client.session().is_expired(now))
                    .then(|| (key, entry.client.client_id().into()))
            })
            .collect()
    }

    /// The tokens a revalidation round at `now` re-checks (see [`super::revalidation_tokens`]).
    pub fn revalidation_tokens(&self, now: u64, interval: Duration) -> Vec<RoundToken> {
        super::revalidation_tokens(self.entries.values().map(|entry| entry.client()), now, interval)
    }

    /// Drops the entries the broker can no longer act for (see the ownership rule), and
    /// rebuilds the expiry queue once it is mostly stale. Call it from housekeeping, never
    /// within the DISCONNECT that finished an entry.
    pub fn purge(&mut self) {
        let latest = &mut self.latest;
        self.entries.retain(|key, entry| {
            let keep = !entry.is_finished();
            if !keep && latest.get(entry.client.client_id()) == Some(key) {
                latest.remove(entry.client.client_id());
            }
            keep
        });
        // Every login queues its expiry, and a queued expiry otherwise leaves only when its
        // time comes: a device reconnecting all hour with one token would leave a trail as long
        // as its reconnects. Rebuilt from the online clients once mostly stale, the queue is
        // bounded by the clients connected.
        let online = || self.entries.iter().filter(|(_, entry)| entry.client.is_online());
        if self.expiries.len() > 2 * online().count() + 64 {
            self.expiries = online()
                .filter_map(|(key, entry)| {
                    Some(Reverse((entry.client.session().expires_at()?, *key)))
                })
                .collect();
        }
    }

    /// Number of entries (online and offline).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no client is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Expiries waiting in the queue (for diagnostics and tests).
    pub fn queued_expiries(&self) -> usize {
        self.expiries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Recheck;
    use crate::{AccessToken, Grants, Session, TokenSource};

    const EXP: u64 = 1_000;

    fn client(client_id: &str, token: &str) -> TokenClient {
        let token = AccessToken::new(token.as_bytes());
        let grants =
            Grants::from_scopes(["write:data/#", "write:wills/#"], "").resolve(client_id, None);
        let session = Session::new(grants, Some(EXP), token.digest(), TokenSource::Jwt);
        TokenClient::new(client_id, session, Recheck::Token(token))
    }

    fn registry() -> Registry<usize> {
        Registry::new(true)
    }

    fn answer(
        registry: &mut Registry<usize>,
        key: usize,
        id: &str,
        topic: &str,
        now: u64,
    ) -> Answer {
        registry.acl(key, |stored| stored == id, Access::Write, topic, now)
    }

    #[test]
    fn an_entry_answers_only_for_its_key_and_client_id() {
        let mut registry = registry();
        registry.admit(1, client("a", "t"), false, 10);
        assert_eq!(answer(&mut registry, 1, "a", "data/x", 10), Answer::Allow);
        assert_eq!(answer(&mut registry, 1, "a", "ops/x", 10), Answer::Deny);
        assert_eq!(
            answer(&mut registry, 1, "b", "data/x", 10),
            Answer::NotOurs,
            "other id, same key"
        );
        assert_eq!(
            answer(&mut registry, 2, "a", "data/x", 10),
            Answer::NotOurs,
            "same id, other key"
        );
        let metrics = Metrics::default();
        registry.fold_counts(&metrics);
        let counted = metrics.snapshot();
        assert_eq!((counted.acl_allowed, counted.acl_denied), (1, 1), "not ours is not counted");
    }

    #[test]
    fn entries_stay_until_the_broker_is_provably_done_with_their_object() {
        // (outlives its connection, disconnected, key reused by a new login, kept after purge)
        let cases = [
            (false, false, false, true), // online
            (false, true, false, false), // 3.1.1 clean session, disconnected
            (true, true, false, true),   // durable or MQTT 5: the broker may still act
            (true, true, true, false),   // its object was freed: the key has a new login
            (true, false, true, false),
        ];
        for (outlives, disconnected, reused, kept) in cases {
            let mut registry = registry();
            registry.admit(1, client("a", "t"), outlives, 10);
            if disconnected {
                registry.disconnected(1, Some("a"), 20);
                assert!(registry.get(1, Some("a")).is_some(), "kept within the DISCONNECT");
            }
            if reused {
                registry.forget_key(1);
            }
            registry.purge();
            assert_eq!(
                registry.get(1, Some("a")).is_some(),
                kept,
                "{outlives} {disconnected} {reused}"
            );
        }
    }

    #[test]
    fn a_disconnected_client_is_decided_as_of_when_it_left() {
        let mut registry = registry();
        registry.admit(1, client("a", "t"), true, 10);
        registry.disconnected(1, None, 900);
        let entry = registry.get(1, Some("a")).expect("kept");
        assert!(entry.client().recheck().is_none(), "the token goes with the connection");
        assert!(registry.live(1, Some("a")).is_none());
        assert_eq!(answer(&mut registry, 1, "a", "wills/a", EXP + 60), Answer::Allow, "its will");
        assert!(registry.due_kicks(EXP + 60).is_empty(), "nobody to disconnect");
    }

    #[test]
    fn a_takeover_sends_the_previous_connection_offline() {
        let mut registry = registry();
        registry.admit(1, client("a", "t"), true, 10);
        registry.admit(2, client("a", "u"), true, 20);
        assert!(!registry.get(1, Some("a")).expect("kept").client().is_online());
        assert!(registry.get(2, Some("a")).expect("new").client().is_online());
        let tokens: Vec<_> = registry
            .revalidation_tokens(20, Duration::ZERO)
            .iter()
            .map(|token| token.digest)
            .collect();
        assert_eq!(tokens, vec![AccessToken::new(&b"u"[..]).digest()]);
    }

    #[test]
    fn expired_clients_are_due_for_disconnection_once_and_only_while_current() {
        let mut registry = registry();
        registry.admit(1, client("a", "t"), true, 10);
        registry.admit(2, client("b", "t"), true, 10);
        registry.disconnected(2, Some("b"), 20);
        assert!(registry.due_kicks(EXP - 1).is_empty());
        assert_eq!(answer(&mut registry, 1, "a", "data/x", EXP), Answer::Deny);
        assert_eq!(registry.due_kicks(EXP), vec![(1, "a".into())], "queue and ACL check, once");
        assert!(registry.due_kicks(EXP + 1).is_empty());

        let mut without = Registry::<usize>::new(false);
        without.admit(1, client("a", "t"), true, 10);
        assert_eq!(answer(&mut without, 1, "a", "data/x", EXP), Answer::Deny);
        assert!(without.due_kicks(EXP).is_empty(), "oauth_disconnect_on_expiry false");
    }

    #[test]
    fn a_revoked_token_revokes_every_entry_and_disconnects_the_current_ones() {
        let mut registry = registry();
        registry.admit(1, client("a", "t"), true, 10);
        registry.admit(2, client("b", "t"), true, 10);
        registry.admit(3, client("c", "u"), true, 10);
        registry.disconnected(2, Some("b"), 20);
        let due = registry.revoke_token(&AccessToken::new(&b"t"[..]).digest());
        assert_eq!(due, vec![(1, "a".into())]);
        assert_eq!(answer(&mut registry, 2, "b", "wills/b", 30), Answer::Deny, "no will");
        assert_eq!(answer(&mut registry, 3, "c", "data/x", 30), Answer::Allow);
        registry.revoke(3, "other id");
        assert_eq!(answer(&mut registry, 3, "c", "data/x", 30), Answer::Allow);
        registry.revoke(3, "c");
        assert_eq!(answer(&mut registry, 3, "c", "data/x", 30), Answer::Deny);
    }

    #[test]
    fn the_expiry_queue_stays_bounded_by_the_clients_online() {
        let mut registry = registry();
        for login in 0..500 {
            registry.forget_key(1);
            registry.admit(1, client("a", "t"), true, login);
        }
        registry.purge();
        assert!(registry.queued_expiries() <= 66, "{}", registry.queued_expiries());
    }
}
