//! Assembles the broker: engine context, retained-message store, our hook handler, listeners,
//! `$SYS` counters, signals.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::codec::v5::{self as codec_v5, DisconnectReasonCode};
use rmqtt::context::ServerContext;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt::types::{Disconnect, Message, Reason};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::{BrokerConfig, ListenerConfig, Transport};
use crate::hooks::OAuthHooks;
use crate::policy::Policy;

/// Retained messages in memory, never expiring by themselves (as in Mosquitto).
/// How long connected clients get to receive their DISCONNECT at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// With `[storage]`, how long to wait before exiting: rmqtt-session-storage writes in the
/// background and sled flushes every 500 ms, only then; the messages queued for offline
/// sessions just before SIGTERM would otherwise be lost.
const STORAGE_FLUSH_WAIT: Duration = Duration::from_millis(1500);

/// A startup failure, with the exit code the process should end with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// Binds one listener (so a port in use is an error now, not a silent exit later).
fn bind(
    index: usize,
    config: &ListenerConfig,
    handshake_timeout: Duration,
) -> Result<Listener, StartError> {
    let transport = config.transport.as_str();
    let fail = |e: anyhow_like::Error| {
        StartError(format!("listener[{index}] ({transport} {}): {e}", config.bind))
    };
    let builder = Builder::new()
        .name(format!("{transport}/{index}"))
        .laddr(config.bind)
        .reuseaddr(Some(true))
        // Our hook decides about anonymous clients; the engine's own switch would skip it.
        .allow_anonymous(false)
        .max_packet_size(config.max_packet_size)
        .max_topic_aliases(config.max_topic_aliases)
        .max_keepalive(config.max_keepalive)
        .handshake_timeout(handshake_timeout)
        // Messages without an expiry property never expire (Mosquitto's behaviour).
        .message_expiry_interval(Duration::ZERO)
        .tls_cert(config.cert.as_ref().map(|p| p.to_string_lossy().into_owned()))
        .tls_key(config.key.as_ref().map(|p| p.to_string_lossy().into_owned()))
        // The engine checks the chain to `ca` in the handshake and hands our hook the
        // certificate's names; it never makes them the username (our hook decides).
        .tls_cross_certificate(config.client_certificates.is_some())
        .tls_client_ca_certs(
            config.client_certificates.as_ref().map(|c| c.ca.to_string_lossy().into_owned()),
        )
        .collect_cert_info(config.client_certificates.is_some());
    let listener = builder.bind().map_err(|e| fail(anyhow_like::Error::from(e)))?;
    let listener = match config.transport {
        Transport::Tcp => listener.tcp(),
        Transport::Tls => listener.tls(),
        Transport::Ws => listener.ws(),
        Transport::Wss => listener.wss(),
    };
    listener.map_err(|e| fail(anyhow_like::Error::from(e)))
}

/// `rmqtt`'s error type, named once.
mod anyhow_like {
    pub(super) type Error = rmqtt::Error;
}

/// Runs the broker until SIGINT or SIGTERM.
///
/// `policy` must be built, and finally dropped, outside the async runtime: the core's blocking
/// HTTP client owns a runtime of its own.
pub async fn run(config: BrokerConfig, policy: Arc<Policy>) -> Result<(), StartError> {
    log::info!("starting: {}", config.describe());
    if let Some(warning) = policy.authenticator().config().unbound_identity_warning() {
        log::warn!("{warning}");
    }

    let storage = config.storage.as_ref();
    if let Some(storage) = storage {
        std::fs::create_dir_all(&storage.dir).map_err(|e| {
            StartError(format!("option storage.dir: cannot create {}: {e}", storage.dir.display()))
        })?;
    }
    let mut scx = ServerContext::new()
        .plugins_config_map_add("rmqtt-retainer", crate::storage::retainer_config(storage));
    if let Some(cluster) = &config.cluster {
        scx = scx.node_id(cluster.node_id).plugins_config_map_add(
            crate::cluster::PLUGIN_NAME,
            crate::cluster::plugin_config(cluster),
        );
    }
    if let Some(storage) = storage {
        scx = scx.plugins_config_map_add(
            "rmqtt-session-storage",
            crate::storage::session_storage_config(storage),
        );
    }
    let scx = scx.build().await;
    rmqtt_retainer::register(&scx, true, false)
        .await
        .map_err(|e| StartError(format!("cannot start the retained-message store: {e}")))?;
    if storage.is_some() {
        rmqtt_session_storage::register(&scx, true, false)
            .await
            .map_err(|e| StartError(format!("cannot start the session store: {e}")))?;
        let mut manager = scx.extends.session_mgr_mut().await;
        let storing =
            std::mem::replace(&mut *manager, Box::new(rmqtt::session::DefaultSessionManager));
        *manager = Box::new(crate::storage::WithoutCredentials(storing));
    }
    *scx.extends.shared_subscription_mut().await =
        Box::new(crate::shared_subscriptions::RoundRobin::default());
    // The cluster plugin installs its own `Shared` when it starts: wrap that one below.
    if let Some(cluster) = &config.cluster {
        crate::cluster::join(&scx, cluster).await?;
    }
    {
        let mut shared = scx.extends.shared_mut().await;
        let engine =
            std::mem::replace(&mut *shared, Box::new(rmqtt::shared::DefaultShared::new(None)));
        *shared = Box::new(crate::session_takeover::TakeoverSafe::new(engine));
    }
    // Listener ids are 1-based positions (see `listener_by_id` below).
    let certificate_listeners = (1u16..)
        .zip(&config.listeners)
        .filter_map(|(id, listener)| Some((id, listener.client_certificates.as_ref()?.identity)))
        .collect();
    let hooks = OAuthHooks::new(Arc::clone(&policy), certificate_listeners);
    hooks.register(&scx).await;

    // The handshake includes our token check: leave it the HTTP budget plus a margin.
    let handshake_timeout =
        (config.auth.http_timeout * 2 + Duration::from_secs(5)).max(Duration::from_secs(30));
    let mut server = MqttServer::new(scx.clone());
    let mut addresses = Vec::new();
    for (index, listener_config) in config.listeners.iter().enumerate() {
        let listener = bind(index, listener_config, handshake_timeout)?;
        let local = listener.local_addr().unwrap_or(listener_config.bind);
        addresses.push(format!("{} {local}", listener_config.transport.as_str()));
        let id =
            u16::try_from(index + 1).map_err(|_| StartError("too many listeners".to_owned()))?;
        server = server.listener_by_id(listener, id);
    }
    let server = server.build();

    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| StartError(e.to_string()))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| StartError(e.to_string()))?;
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| StartError(e.to_string()))?;

    let sys = (!config.metrics.sys_interval.is_zero()).then(|| {
        tokio::spawn(crate::sys::publish_forever(
            scx.clone(),
            hooks.clone(),
            config.metrics.sys_interval,
        ))
    });
    let mut serving = tokio::spawn(server.run());
    log::info!("fallback-broker {} running on {}", env!("CARGO_PKG_VERSION"), addresses.join(", "));

    let signal_name = loop {
        tokio::select! {
            _ = interrupt.recv() => break "SIGINT",
            _ = terminate.recv() => break "SIGTERM",
            _ = hangup.recv() => policy.reload(),
            ended = &mut serving => {
                return Err(StartError(format!("the listeners stopped unexpectedly: {ended:?}")));
            }
        }
    };
    log::info!("{signal_name}: shutting down");
    serving.abort();
    if let Some(sys) = sys {
        sys.abort();
    }
    disconnect_all(&scx).await;
    if storage.is_some() {
        tokio::time::sleep(STORAGE_FLUSH_WAIT).await;
    }
    log::info!("stopped");
    Ok(())
}

/// Ends every connection (asking for DISCONNECT 0x8B, server shutting down, which rmqtt 0.24
/// does not get onto the wire before closing) and waits briefly for them to close.
async fn disconnect_all(scx: &ServerContext) {
    let shared = scx.extends.shared().await;
    let mut count = 0usize;
    for entry in shared.iter() {
        if let Some(tx) = entry.tx() {
            let disconnect = codec_v5::Disconnect {
                reason_code: DisconnectReasonCode::ServerShuttingDown,
                ..Default::default()
            };
            let reason = Reason::ConnectDisconnect(Some(Disconnect::V5(disconnect)));
            if tx.unbounded_send(Message::Closed(reason)).is_ok() {
                count += 1;
            }
        }
    }
    drop(shared);
    if count > 0 {
        log::info!("disconnecting {count} client(s)");
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while scx.connections.count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
