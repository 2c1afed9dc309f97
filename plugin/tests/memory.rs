//! What the plugin keeps per client it admitted, measured with a counting allocator (this test
//! binary's only test, so no other test allocates meanwhile): online, after DISCONNECT (the
//! token is dropped, the grants stay for the will and queued messages), and under churn of
//! distinct client ids on reused addresses. Prints the figures the README quotes.
#![allow(clippy::unwrap_used)]
// The figures are this test's report.
#![allow(clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mosquitto_oauth::instance::{AuthDecision, Host, Instance, Login};
use mosquitto_oauth::settings::PluginConfig;
use serde_json::json;

/// Bytes currently allocated through the global allocator.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout, as the caller promised for `alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct QuietHost;

impl Host for &QuietHost {
    fn publish_retained(&self, _topic: &str, _payload: &[u8]) {}
    fn kick(&self, _client_id: &str) {}
    fn supports_delayed_login(&self) -> bool {
        false
    }
    fn complete_login(&self, _client_id: &str, _decision: AuthDecision) {}
}

fn keys(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../auth-core/tests/keys").join(name)
}

fn token() -> String {
    let claims = json!({
        "exp": oauth_core::now_epoch() + 3600,
        "sub": "dev",
        "scope": "mqtt:write:devices/%c/# mqtt:read:devices/%c/cmd mqtt:write:wills/%c",
    });
    let pem = std::fs::read(keys("rsa-1.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn login<'a>(address: usize, client_id: &'a str, token: &'a str) -> Login<'a> {
    Login {
        address,
        client_id: Some(client_id),
        username: None,
        password: Some(token.as_bytes()),
        outlives_connection: true,
        certificate: None,
    }
}

fn live() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[test]
fn bytes_per_remembered_client_and_the_bound_under_churn() {
    const CLIENTS: usize = 20_000;
    let host = QuietHost;
    let jwks = keys("jwks-1.json");
    let config = PluginConfig::from_pairs([("oauth_jwks_file", jwks.to_str().unwrap())]).unwrap();
    let plugin = Instance::new(&host, config, 1).unwrap();
    let token = token();
    let ids: Vec<String> = (0..CLIENTS).map(|n| format!("device-{n:06}")).collect();
    // Warm the token cache and the tables' first allocations.
    assert_eq!(plugin.login(&login(1, "warm-up", &token)).decision, AuthDecision::Accept);

    let before = live();
    for (n, client_id) in ids.iter().enumerate() {
        assert_eq!(
            plugin.login(&login(0x10_0000 + n * 0x400, client_id, &token)).decision,
            AuthDecision::Accept
        );
    }
    let online = live() - before;
    for (n, client_id) in ids.iter().enumerate() {
        plugin.disconnected(0x10_0000 + n * 0x400, Some(client_id));
    }
    plugin.tick(Instant::now() + Duration::from_secs(2));
    let offline = live() - before;
    assert_eq!(plugin.client_count(), CLIENTS + 1, "MQTT 5 clients stay owned");

    // 100 000 distinct client ids, each connecting and leaving on one of 64 addresses, as
    // Mosquitto's allocator hands a freed client object's address to the next client.
    let churn_before = live();
    let churn_ids: Vec<String> = (0..100_000).map(|n| format!("churn-{n:06}")).collect();
    let ids_bytes = live() - churn_before;
    for (n, client_id) in churn_ids.iter().enumerate() {
        let address = 0x1000 + (n % 64) * 0x400;
        assert_eq!(plugin.login(&login(address, client_id, &token)).decision, AuthDecision::Accept);
        plugin.disconnected(address, Some(client_id));
    }
    plugin.tick(Instant::now() + Duration::from_secs(4));
    let churn = live() - churn_before - ids_bytes;
    assert_eq!(plugin.client_count(), CLIENTS + 1 + 64);

    let per_online = online / CLIENTS as isize;
    let per_offline = offline / CLIENTS as isize;
    println!(
        "per client: {per_online} bytes online (token {} bytes), {per_offline} bytes remembered after DISCONNECT; \
         churn of 100000 client ids on 64 addresses: {churn} bytes kept",
        token.len()
    );
    assert!(per_offline < per_online, "the token is dropped at DISCONNECT");
    assert!(per_offline < 1024, "{per_offline} bytes per remembered client");
    assert!(churn < 64 * 1024, "churn kept {churn} bytes");
}
