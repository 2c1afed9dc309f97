//! The fallback broker's engine without our authentication and authorization: rmqtt 0.24 with
//! the same features, retained-message store, shared-subscription and takeover extensions and
//! listener settings, but no hook of ours and anonymous clients allowed. Benchmark F2 divides
//! the fallback broker's throughput by this one's to show what the OAuth layer costs.
//! Not for production use: anyone may connect and do anything.
//!
//! `cargo run --release -p fallback-broker --example engine_without_auth -- <port>`

use std::net::SocketAddr;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).ok_or("usage: engine_without_auth <port>")?.parse()?;
    let scx = ServerContext::new()
        .plugins_config_map_add("rmqtt-retainer", fallback_broker::storage::retainer_config(None))
        .build()
        .await;
    rmqtt_retainer::register(&scx, true, false).await?;
    *scx.extends.shared_subscription_mut().await =
        Box::new(fallback_broker::shared_subscriptions::RoundRobin::default());
    {
        let mut shared = scx.extends.shared_mut().await;
        let engine =
            std::mem::replace(&mut *shared, Box::new(rmqtt::shared::DefaultShared::new(None)));
        *shared = Box::new(fallback_broker::session_takeover::TakeoverSafe::new(engine));
    }
    let listener = Builder::new()
        .name("tcp/0")
        .laddr(SocketAddr::from(([127, 0, 0, 1], port)))
        .reuseaddr(Some(true))
        .allow_anonymous(true)
        .message_expiry_interval(Duration::ZERO)
        .bind()?
        .tcp()?;
    let server = MqttServer::new(scx.clone()).listener_by_id(listener, 1).build();
    server.run().await?;
    Ok(())
}
