//! Per-client state: who we authenticated, with which grants, and for how long Mosquitto can
//! still act for them.
//!
//! Mosquitto reuses `struct mosquitto` addresses for later connections, runs a reconnecting
//! client's auth before the old connection's DISCONNECT, checks wills and queued messages of
//! durable sessions after DISCONNECT, and builds fake clients for retained-source checks. So an
//! entry is keyed by the client's address *and* must carry the same client id to be used; a
//! login on an address replaces whatever was there; DISCONNECT only marks the entry offline.
//!
//! **Ownership rule.** An entry is the plugin's answer for its client object for as long as
//! Mosquitto may still act for that object, so that no other mechanism ever decides for a
//! client the plugin admitted (by a username the client chose). The plugin cannot read an MQTT 5
//! client's Session Expiry or Will Delay Interval, nor learn when Mosquitto frees a session, so
//! an entry is dropped only when that is certain:
//! - a new login arrives on the same address: Mosquitto freed the old object (reused memory);
//! - an MQTT 3.1/3.1.1 clean-session client has been disconnected (DISCONNECT seen) for a
//!   housekeeping round: Mosquitto checked its will within that same DISCONNECT, and has
//!   nothing else left to do for it.
//!
//! Every other entry stays, answering from its grants while its token is valid and denying
//! everything once it has expired or was revoked. Memory is bounded by the client objects
//! Mosquitto ever held at once, since a freed object's address is reused by the next one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use oauth_core::TokenDigest;
use oauth_core::policy::TokenClient;

/// One client we authenticated: the core's record of it, and what Mosquitto's object
/// lifecycle adds.
#[derive(Debug)]
pub struct ClientEntry {
    client: TokenClient,
    /// Mosquitto may act for this client after its connection ends, beyond the will check it
    /// makes at once: a durable session, or an MQTT 5 client (whose Session Expiry and Will
    /// Delay the plugin cannot read).
    outlives_connection: bool,
    /// A DISCONNECT event was seen for this object.
    disconnect_seen: bool,
}

impl ClientEntry {
    /// A freshly authenticated, online client.
    pub fn new(client: TokenClient, outlives_connection: bool) -> Self {
        Self { client, outlives_connection, disconnect_seen: false }
    }

    /// The core's record: grants, expiry, token, revoked mark, when it left.
    #[inline]
    pub fn client(&self) -> &TokenClient {
        &self.client
    }

    /// Offline from `now` (DISCONNECT, or a newer connection of its client id took over). The
    /// token goes: only online sessions are revalidated.
    fn go_offline(&mut self, now: u64) {
        self.client.left(now);
        self.client.release_token();
    }

    /// True when Mosquitto can no longer act for this object (see the module's ownership rule).
    fn is_finished(&self) -> bool {
        self.disconnect_seen && !self.outlives_connection
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
    /// Forgets whatever was stored for this address: a new client object is authenticating on
    /// it, so the one the entry was for has been freed.
    pub fn reset(&mut self, address: usize) {
        if let Some(old) = self.entries.remove(&address) {
            self.forget_latest(old.client.client_id(), address);
        }
    }

    fn forget_latest(&mut self, client_id: &str, address: usize) {
        if self.latest.get(client_id) == Some(&address) {
            self.latest.remove(client_id);
        }
    }

    /// Stores a newly authenticated client. An older entry of the same client id (the
    /// connection being taken over) goes offline; it stays until its object is known to be gone.
    pub fn insert(&mut self, address: usize, entry: ClientEntry, now: u64) {
        if let Some(previous) = self.latest.insert(entry.client.client_id().into(), address)
            && previous != address
            && let Some(old) = self.entries.get_mut(&previous)
        {
            old.go_offline(now);
        }
        self.entries.insert(address, entry);
    }

    /// The entry for this address, if it belongs to this client id.
    #[inline]
    pub fn get(&self, address: usize, client_id: Option<&str>) -> Option<&ClientEntry> {
        let entry = self.entries.get(&address)?;
        (Some(entry.client.client_id()) == client_id).then_some(entry)
    }

    /// The entry of this online client object: the one at `address` with this client id that
    /// has seen no DISCONNECT. A login for it is a re-check of a client already admitted
    /// (Mosquitto 2.1 re-runs logins on SIGHUP; MQTT 5 re-authentication), never a new object.
    pub fn live(&self, address: usize, client_id: Option<&str>) -> Option<&ClientEntry> {
        self.get(address, client_id).filter(|entry| !entry.disconnect_seen)
    }

    /// The entry at this address whatever its client id, if it is the online, current
    /// connection of that id: the only kind of client worth kicking.
    pub fn current_at(&self, address: usize) -> Option<&ClientEntry> {
        let entry = self.entries.get(&address)?;
        (entry.client.is_online() && self.latest.get(entry.client.client_id()) == Some(&address))
            .then_some(entry)
    }

    /// Records a DISCONNECT: the entry stays for wills and queued messages. Mosquitto 2.0
    /// clears the client id of a connection refused after its login, so an event without an id
    /// applies to whatever entry is at the address.
    pub fn disconnected(&mut self, address: usize, client_id: Option<&str>, now: u64) {
        if let Some(entry) = self.entries.get_mut(&address)
            && (client_id.is_none() || Some(entry.client.client_id()) == client_id)
        {
            entry.go_offline(now);
            entry.disconnect_seen = true;
        }
    }

    /// Marks the entry of this client object revoked (a failed re-authentication).
    pub fn revoke(&mut self, address: usize, client_id: &str) {
        if let Some(entry) = self.entries.get_mut(&address)
            && entry.client.client_id() == client_id
        {
            entry.client.revoke();
        }
    }

    /// Drops the entries Mosquitto can no longer act for (see the module's ownership rule).
    /// Called from housekeeping, so never within the DISCONNECT that finished an entry.
    pub fn purge(&mut self) {
        let latest = &mut self.latest;
        self.entries.retain(|address, entry| {
            let keep = !entry.is_finished();
            if !keep && latest.get(entry.client.client_id()) == Some(address) {
                latest.remove(entry.client.client_id());
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
            if entry.client.session().token_digest() == *digest {
                entry.client.revoke();
                if entry.client.is_online()
                    && self.latest.get(entry.client.client_id()) == Some(address)
                {
                    current.push(entry.client.client_id().into());
                }
            }
        }
        current
    }

    /// Every entry, online and offline.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ClientEntry)> {
        self.entries.iter().map(|(address, entry)| (*address, entry))
    }
}
