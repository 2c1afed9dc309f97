//! The plugin's counters as retained `$SYS/broker/oauth/...` messages, published by the broker
//! itself every `[metrics] sys_interval` seconds: `connects/{accepted,denied,deferred}`,
//! `acl/{allowed,denied}`, `cache/{hits,misses}`, `upstream/{calls,errors}`,
//! `upstream/latency_us/{avg,max}`, `revalidation/{round_seconds,behind}` and `clients`. Like every delivery they pass the read ACL,
//! so a client needs a grant naming them (`mqtt:read:$SYS/broker/oauth/#`); `#` never matches.

use std::time::Duration;

use bytes::Bytes;
use rmqtt::codec::types::QoS;
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, CodecPublish, From, Id, Publish, TopicName};
use rmqtt::utils::timestamp_millis;

use crate::hooks::OAuthHooks;

/// Prefix of every counter topic (the plugin's, for its first instance).
pub const TOPIC_PREFIX: &str = "$SYS/broker/oauth";

/// Publishes the counters every `interval` until the task is dropped.
pub async fn publish_forever(scx: ServerContext, hooks: OAuthHooks, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let from = From::from_system(Id::new(
        scx.node.id(),
        0,
        None,
        None,
        ClientId::from_static("$SYS"),
        None,
    ));
    loop {
        ticker.tick().await;
        let counters = hooks.policy().authenticator().sys_counters();
        let clients = ("clients".to_owned(), hooks.token_clients() as u64);
        for (name, value) in counters.into_iter().chain([clients]) {
            publish_retained(&scx, &from, format!("{TOPIC_PREFIX}/{name}"), value.to_string())
                .await;
        }
    }
}

async fn publish_retained(scx: &ServerContext, from: &From, topic: String, payload: String) {
    let publish = CodecPublish {
        dup: false,
        retain: true,
        qos: QoS::AtMostOnce,
        topic: TopicName::from(topic),
        packet_id: None,
        payload: Bytes::from(payload),
        properties: Some(Default::default()),
    };
    let publish = Publish::from(publish).create_time(timestamp_millis());
    if let Err(e) = SessionState::forwards(scx, from.clone(), publish, false, None).await {
        log::debug!("$SYS publication failed: {e}");
    }
}
