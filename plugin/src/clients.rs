//! The plugin's registry of admitted clients: the core's [`Registry`], keyed by the address of
//! Mosquitto's `struct mosquitto` (the ownership rules are the core's; Mosquitto reuses a freed
//! object's address for the next client, which is what makes a new login on an address proof
//! that the old object is gone).

use std::hash::{BuildHasherDefault, Hasher};

use oauth_core::policy::Registry;

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

/// Admitted clients by client object address.
pub type ClientTable = Registry<usize, BuildHasherDefault<AddressHasher>>;
