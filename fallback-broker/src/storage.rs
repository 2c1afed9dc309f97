//! `[storage]`: durable sessions and retained messages kept across restarts, in sled databases,
//! by rmqtt's own session-storage plugin and the retainer's sled mode.
//!
//! One thing that plugin does cannot stand in a security component: it writes each durable
//! session's CONNECT to disk as it came, password included, and here the password is the
//! client's access token. [`WithoutCredentials`] hands it a copy without the password; nothing
//! needs it after the login (our session state keeps the token in memory only, for
//! revalidation).
//!
//! What a restored session may do is unchanged by the restart: it has no login record (our
//! `Principal` lives in memory), so every hook denies it until its client logs in again with a
//! token that is valid then, and queued messages are delivered only through that new login's
//! read grants.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rmqtt::Result;
use rmqtt::context::ServerContext;
use rmqtt::session::{SessionLike, SessionManager};
use rmqtt::types::{
    ConnectInfo, ConnectInfoType, DisconnectInfo, FitterType, Id, ListenerConfig, MessageQueueType,
    OutInflightType, SessionSubs, TimestampMillis,
};

use crate::config::StorageConfig;

/// sled's page cache per database; its default (1 GiB) is sized for a dedicated server.
const SLED_CACHE: &str = "64M";

/// The retainer's configuration: in memory, or in `<dir>/retained`.
pub fn retainer_config(storage: Option<&StorageConfig>) -> String {
    let mut config = toml::Table::new();
    config.insert("retained_message_ttl".into(), "0s".into());
    let store = match storage {
        Some(storage) => sled_table(&storage.dir.join("retained")),
        None => toml::Table::from_iter([("type".to_owned(), "ram".into())]),
    };
    config.insert("storage".into(), store.into());
    config.to_string()
}

/// The session-storage plugin's configuration: sessions in `<dir>/sessions`.
pub fn session_storage_config(storage: &StorageConfig) -> String {
    let mut config = toml::Table::new();
    config.insert("storage".into(), sled_table(&storage.dir.join("sessions")).into());
    config.to_string()
}

fn sled_table(path: &Path) -> toml::Table {
    let sled = toml::Table::from_iter([
        ("path".to_owned(), path.to_string_lossy().into_owned().into()),
        ("cache_capacity".to_owned(), SLED_CACHE.into()),
    ]);
    toml::Table::from_iter([("type".to_owned(), "sled".into()), ("sled".to_owned(), sled.into())])
}

/// A session manager that gives the one it wraps each session's CONNECT without its password,
/// so that a storing manager never writes an access token to disk.
pub struct WithoutCredentials(pub Box<dyn SessionManager>);

impl std::fmt::Debug for WithoutCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WithoutCredentials")
    }
}

/// `connect` without its password (the token).
fn without_credentials(connect: &ConnectInfo) -> ConnectInfo {
    match connect {
        ConnectInfo::V3(id, packet) => {
            let mut packet = packet.clone();
            packet.password = None;
            ConnectInfo::V3(id.clone(), packet)
        }
        ConnectInfo::V5(id, packet) => {
            let mut packet = packet.clone();
            packet.password = None;
            ConnectInfo::V5(id.clone(), packet)
        }
    }
}

#[async_trait]
impl SessionManager for WithoutCredentials {
    fn enable(&self) -> bool {
        self.0.enable()
    }

    async fn create(
        &self,
        id: Id,
        scx: ServerContext,
        listen_cfg: ListenerConfig,
        fitter: FitterType,
        subscriptions: SessionSubs,
        deliver_queue: MessageQueueType,
        outinflight: OutInflightType,
        conn_info: ConnectInfoType,
        created_at: TimestampMillis,
        connected_at: TimestampMillis,
        session_present: bool,
        superuser: bool,
        connected: bool,
        disconnect_info: Option<DisconnectInfo>,
        last_id: Option<Id>,
    ) -> Result<Arc<dyn SessionLike>> {
        let conn_info = Arc::new(without_credentials(&conn_info));
        self.0
            .create(
                id,
                scx,
                listen_cfg,
                fitter,
                subscriptions,
                deliver_queue,
                outinflight,
                conn_info,
                created_at,
                connected_at,
                session_present,
                superuser,
                connected,
                disconnect_info,
                last_id,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_are_configured_with_our_directories() {
        let storage = StorageConfig { dir: "/var/lib/fallback \"broker\"".into() };
        let retainer: toml::Table = retainer_config(Some(&storage)).parse().expect("TOML");
        assert_eq!(retainer["storage"]["type"].as_str(), Some("sled"));
        assert_eq!(
            retainer["storage"]["sled"]["path"].as_str(),
            Some("/var/lib/fallback \"broker\"/retained")
        );
        assert_eq!(retainer["retained_message_ttl"].as_str(), Some("0s"));
        let sessions: toml::Table = session_storage_config(&storage).parse().expect("TOML");
        assert_eq!(
            sessions["storage"]["sled"]["path"].as_str(),
            Some("/var/lib/fallback \"broker\"/sessions")
        );
        let in_memory: toml::Table = retainer_config(None).parse().expect("TOML");
        assert_eq!(in_memory["storage"]["type"].as_str(), Some("ram"));
    }
}
