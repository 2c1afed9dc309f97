//! Per-client state: who we authenticated, with which grants.
//!
//! Mosquitto reuses `struct mosquitto` addresses for later connections, runs a reconnecting
//! client's auth before the old connection's DISCONNECT, checks wills and queued messages of
//! durable sessions after DISCONNECT, and builds fake clients for retained-source checks. So an
//! entry is keyed by the client's address *and* must carry the same client id to be used; a
//! login on an address replaces whatever was there; DISCONNECT only marks the entry offline.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use oauth_core::{AccessToken, Session, TokenDigest};

/// How long the entry of a non-durable client outlives its DISCONNECT: its will is checked
/// after DISCONNECT (immediately, or after `will_delay_interval`).
pub const OFFLINE_GRACE: Duration = Duration::from_secs(60);

/// One client we authenticated.
#[derive(Debug)]
pub struct ClientEntry {
    client_id: Box<str>,
    session: Session,
    /// Kept for revalidation (re-introspection); never logged.
    token: AccessToken,
    /// Keeps receiving READ checks for queued messages after DISCONNECT.
    durable: bool,
    offline_since: Option<Instant>,
    /// Set when revalidation found the token no longer valid: every check is denied, also the
    /// READ checks of messages queued for a durable session.
    revoked: bool,
}

impl ClientEntry {
    /// A freshly authenticated, online client.
    pub fn new(client_id: &str, session: Session, token: AccessToken, durable: bool) -> Self {
        Self {
            client_id: client_id.into(),
            session,
            token,
            durable,
            offline_since: None,
            revoked: false,
        }
    }

    /// Marks the token as found no longer valid.
    pub fn revoke(&mut self) {
        self.revoked = true;
    }

    /// True once revalidation found the token no longer valid.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// The token the session was opened with.
    pub fn token(&self) -> &AccessToken {
        &self.token
    }

    /// The client's grants and expiry.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// False once DISCONNECT was seen.
    pub fn is_online(&self) -> bool {
        self.offline_since.is_none()
    }
}

/// Hashes a client address: addresses are unique and aligned, so a multiply spreads them well
/// enough and is much cheaper than SipHash on the per-message path.
#[derive(Debug, Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, value: usize) {
        self.0 = (value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_right(17);
    }
}

type ByAddress = HashMap<usize, ClientEntry, BuildHasherDefault<AddressHasher>>;

/// All clients this plugin instance authenticated, keyed by client address.
#[derive(Debug, Default)]
pub struct ClientTable {
    entries: ByAddress,
    /// Latest address per client id, to retire the previous connection's entry on reconnect.
    latest: HashMap<Box<str>, usize>,
}

impl ClientTable {
    /// Forgets whatever was stored for this address (a new connection is authenticating on it).
    pub fn reset(&mut self, address: usize) {
        if let Some(old) = self.entries.remove(&address)
            && self.latest.get(&old.client_id) == Some(&address)
        {
            self.latest.remove(&old.client_id);
        }
    }

    /// Stores a newly authenticated client. An older entry of the same client id (the
    /// connection being taken over) is marked offline so it ages out after the grace period.
    pub fn insert(&mut self, address: usize, entry: ClientEntry, now: Instant) {
        if let Some(previous) = self.latest.insert(entry.client_id.clone(), address)
            && previous != address
            && let Some(old) = self.entries.get_mut(&previous)
        {
            old.durable = false;
            old.offline_since.get_or_insert(now);
        }
        self.entries.insert(address, entry);
    }

    /// The entry for this address, if it belongs to this client id.
    #[inline]
    pub fn get(&self, address: usize, client_id: Option<&str>) -> Option<&ClientEntry> {
        let entry = self.entries.get(&address)?;
        (Some(&*entry.client_id) == client_id).then_some(entry)
    }

    /// The entry at this address whatever its client id, if it is the online, current
    /// connection of that id: the only kind of client worth kicking.
    pub fn current_at(&self, address: usize) -> Option<&ClientEntry> {
        let entry = self.entries.get(&address)?;
        (entry.is_online() && self.latest.get(&entry.client_id) == Some(&address)).then_some(entry)
    }

    /// Records a DISCONNECT: the entry stays for wills and (durable) queued messages.
    pub fn disconnected(&mut self, address: usize, client_id: Option<&str>, now: Instant) {
        if let Some(entry) = self.entries.get_mut(&address)
            && Some(&*entry.client_id) == client_id
        {
            entry.offline_since.get_or_insert(now);
        }
    }

    /// Drops entries nobody can use any more: offline non-durable ones past the grace period,
    /// and offline ones whose token has expired.
    pub fn purge(&mut self, now: Instant, now_epoch: u64) {
        let latest = &mut self.latest;
        self.entries.retain(|address, entry| {
            let keep = match entry.offline_since {
                None => true,
                Some(since) => {
                    !entry.session.is_expired(now_epoch)
                        && (entry.durable || now.duration_since(since) < OFFLINE_GRACE)
                }
            };
            if !keep && latest.get(&entry.client_id) == Some(address) {
                latest.remove(&entry.client_id);
            }
            keep
        });
    }

    /// Number of entries (online and offline).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no client is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks every entry opened with the token of `digest` as revoked; returns the client ids of
    /// those that are the current connection of their client id.
    pub fn revoke_token(&mut self, digest: &TokenDigest) -> Vec<Box<str>> {
        let mut current = Vec::new();
        for (address, entry) in &mut self.entries {
            if entry.session.token_digest() == *digest {
                entry.revoke();
                if entry.is_online() && self.latest.get(&entry.client_id) == Some(address) {
                    current.push(entry.client_id.clone());
                }
            }
        }
        current
    }

    /// Online entries, for lifecycle checks.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ClientEntry)> {
        self.entries.iter().map(|(address, entry)| (*address, entry))
    }
}
