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

use oauth_core::{Access, AccessToken, Session, TokenDigest};

/// One client we authenticated.
#[derive(Debug)]
pub struct ClientEntry {
    client_id: Box<str>,
    session: Session,
    /// Kept for revalidation (re-introspection) while online; dropped at DISCONNECT, since only
    /// online sessions are revalidated. Never logged.
    token: Option<AccessToken>,
    /// Mosquitto may act for this client after its connection ends, beyond the will check it
    /// makes at once: a durable session, or an MQTT 5 client (whose Session Expiry and Will
    /// Delay the plugin cannot read).
    outlives_connection: bool,
    /// Epoch second at which the client went offline (DISCONNECT, or a newer connection of its
    /// client id took over).
    left_at: Option<u64>,
    /// A DISCONNECT event was seen for this object.
    disconnect_seen: bool,
    /// Set when the token was found no longer valid (revalidation, a failed re-authentication):
    /// every check is denied, the will and the READ checks of queued messages included.
    revoked: bool,
}

impl ClientEntry {
    /// A freshly authenticated, online client.
    pub fn new(
        client_id: &str,
        session: Session,
        token: AccessToken,
        outlives_connection: bool,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            session,
            token: Some(token),
            outlives_connection,
            left_at: None,
            disconnect_seen: false,
            revoked: false,
        }
    }

    /// Marks the token as no longer valid.
    pub fn revoke(&mut self) {
        self.revoked = true;
    }

    /// True once the token was found no longer valid.
    pub fn is_revoked(&self) -> bool {
        self.revoked
    }

    /// The token the session was opened with, while the client is online.
    pub fn token(&self) -> Option<&AccessToken> {
        self.token.as_ref()
    }

    /// The client's grants and expiry.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// False once DISCONNECT was seen or a newer connection of the id took over.
    pub fn is_online(&self) -> bool {
        self.left_at.is_none()
    }

    /// Whether the grants allow `access` on `topic` at epoch second `now` (for an offline
    /// client, see [`Session::allows_offline`]).
    #[inline]
    pub fn allows(&self, access: Access, topic: &str, now: u64) -> bool {
        match self.left_at {
            None => self.session.allows(access, topic, now),
            Some(left_at) => self.session.allows_offline(access, topic, left_at, now),
        }
    }

    fn go_offline(&mut self, now: u64) {
        self.left_at.get_or_insert(now);
        self.token = None;
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
            self.forget_latest(&old.client_id, address);
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
        if let Some(previous) = self.latest.insert(entry.client_id.clone(), address)
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
        (Some(&*entry.client_id) == client_id).then_some(entry)
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
        (entry.is_online() && self.latest.get(&entry.client_id) == Some(&address)).then_some(entry)
    }

    /// Records a DISCONNECT: the entry stays for wills and queued messages. Mosquitto 2.0
    /// clears the client id of a connection refused after its login, so an event without an id
    /// applies to whatever entry is at the address.
    pub fn disconnected(&mut self, address: usize, client_id: Option<&str>, now: u64) {
        if let Some(entry) = self.entries.get_mut(&address)
            && (client_id.is_none() || Some(&*entry.client_id) == client_id)
        {
            entry.go_offline(now);
            entry.disconnect_seen = true;
        }
    }

    /// Marks the entry of this client object revoked (a failed re-authentication).
    pub fn revoke(&mut self, address: usize, client_id: &str) {
        if let Some(entry) = self.entries.get_mut(&address)
            && *entry.client_id == *client_id
        {
            entry.revoke();
        }
    }

    /// Drops the entries Mosquitto can no longer act for (see the module's ownership rule).
    /// Called from housekeeping, so never within the DISCONNECT that finished an entry.
    pub fn purge(&mut self) {
        let latest = &mut self.latest;
        self.entries.retain(|address, entry| {
            let keep = !entry.is_finished();
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

    /// Every entry, online and offline.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ClientEntry)> {
        self.entries.iter().map(|(address, entry)| (*address, entry))
    }
}
