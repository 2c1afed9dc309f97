//! Session takeover that does not fail when the session taken over is ending at that moment.
//!
//! A CONNECT whose client id is already connected asks the engine to kick the older session
//! (`Entry::kick`): it sends that session's task a message and awaits a reply. rmqtt 0.24
//! (`shared.rs`, `LockEntry::kick`) refuses the new client with CONNACK 0x88 / 3 (server
//! unavailable) when the reply channel is dropped unanswered. That is what happens when the
//! old session's task is ending already, e.g. a client that sent DISCONNECT or closed its
//! socket and reconnects at once: 25 of 200 such reconnects were refused in a test. When the
//! reply times out instead, the engine goes on and takes the session over.
//!
//! The wrapper below asks again when the reply was dropped. The old task has gone by then
//! (its message channel is closed), so the engine skips the message and takes over: it
//! removes the old session and hands its state (subscriptions, queued messages) to the new
//! one, as for any takeover. Every other engine call is passed through.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::Result;
use rmqtt::grpc::GrpcClients;
use rmqtt::session::Session;
use rmqtt::shared::{Entry, MessageLoadCallback, RetainLoadCallback, Shared};
use rmqtt::types::{
    ForwardedCount, ForwardedRecipients, From, HealthInfo, Id, IsAdmin, MsgID, NodeHealthStatus,
    NodeId, OfflineSession, Publish, Reason, Retain, SessionStatus, SharedGroup, SubRelations,
    SubRelationsMap, SubsSearchParams, SubsSearchResult, Subscribe, SubscribeReturn, To,
    TopicFilter, TopicName, Tx, Unsubscribe,
};

/// The engine's message when a kicked session's task dropped the reply unanswered.
const REPLY_DROPPED: &str = "recv kick result is RecvError";

/// Failures of forwarding a message, as the engine reports them.
type Unforwarded = Vec<(To, From, Publish, Reason)>;

/// The engine's `Shared` with takeover-safe entries.
pub struct TakeoverSafe {
    inner: Box<dyn Shared>,
}

impl std::fmt::Debug for TakeoverSafe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeoverSafe").field("sessions", &self.inner.sessions_count()).finish()
    }
}

impl TakeoverSafe {
    /// Wraps the engine's `Shared` (install with `scx.extends.shared_mut()`).
    pub fn new(inner: Box<dyn Shared>) -> Self {
        Self { inner }
    }
}

/// An entry whose `kick` asks again when the old session ended while being kicked.
struct TakeoverSafeEntry {
    inner: Box<dyn Entry>,
}

#[async_trait]
impl Entry for TakeoverSafeEntry {
    async fn try_lock(&self) -> Result<Box<dyn Entry>> {
        let locked = self.inner.try_lock().await?;
        Ok(Box::new(TakeoverSafeEntry { inner: locked }))
    }

    fn id(&self) -> Id {
        self.inner.id()
    }

    fn id_same(&self) -> Option<bool> {
        self.inner.id_same()
    }

    async fn set(&mut self, session: Session, tx: Tx) -> Result<()> {
        self.inner.set(session, tx).await
    }

    async fn remove(&mut self) -> Result<Option<(Session, Tx)>> {
        self.inner.remove().await
    }

    async fn remove_with(&mut self, id: &Id) -> Result<Option<(Session, Tx)>> {
        self.inner.remove_with(id).await
    }

    async fn kick(
        &mut self,
        clean_start: bool,
        clear_subscriptions: bool,
        is_admin: IsAdmin,
    ) -> Result<OfflineSession> {
        match self.inner.kick(clean_start, clear_subscriptions, is_admin).await {
            Err(e) if e.to_string().starts_with(REPLY_DROPPED) => {
                log::debug!(
                    "{:?}: the session taken over ended meanwhile; taking it over",
                    self.id()
                );
                self.inner.kick(clean_start, clear_subscriptions, is_admin).await
            }
            other => other,
        }
    }

    async fn online(&self) -> bool {
        self.inner.online().await
    }

    async fn is_connected(&self) -> bool {
        self.inner.is_connected().await
    }

    fn session(&self) -> Option<Session> {
        self.inner.session()
    }

    fn exist(&self) -> bool {
        self.inner.exist()
    }

    fn tx(&self) -> Option<Tx> {
        self.inner.tx()
    }

    async fn subscribe(&self, subscribe: &Subscribe) -> Result<SubscribeReturn> {
        self.inner.subscribe(subscribe).await
    }

    async fn unsubscribe(&self, unsubscribe: &Unsubscribe) -> Result<bool> {
        self.inner.unsubscribe(unsubscribe).await
    }

    async fn publish(
        &self,
        from: From,
        p: Publish,
    ) -> std::result::Result<(), (From, Publish, Reason)> {
        self.inner.publish(from, p).await
    }

    async fn subscriptions(&self) -> Option<Vec<SubsSearchResult>> {
        self.inner.subscriptions().await
    }
}

#[async_trait]
impl Shared for TakeoverSafe {
    fn entry(&self, id: Id) -> Box<dyn Entry> {
        Box::new(TakeoverSafeEntry { inner: self.inner.entry(id) })
    }

    fn exist(&self, client_id: &str) -> bool {
        self.inner.exist(client_id)
    }

    async fn forwards(
        &self,
        msg_id: Option<MsgID>,
        from: From,
        publish: Publish,
    ) -> std::result::Result<ForwardedCount, (ForwardedCount, Unforwarded)> {
        self.inner.forwards(msg_id, from, publish).await
    }

    async fn forwards_and_get_shareds(
        &self,
        from: From,
        publish: Publish,
    ) -> std::result::Result<
        (SubRelationsMap, ForwardedRecipients),
        (ForwardedRecipients, Unforwarded),
    > {
        self.inner.forwards_and_get_shareds(from, publish).await
    }

    async fn forwards_to(
        &self,
        from: From,
        publish: &Publish,
        relations: SubRelations,
        msg_id: Option<MsgID>,
    ) -> std::result::Result<ForwardedRecipients, (ForwardedRecipients, Unforwarded)> {
        self.inner.forwards_to(from, publish, relations, msg_id).await
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Box<dyn Entry>> + Sync + Send + '_> {
        self.inner.iter()
    }

    fn random_session(&self) -> Option<Session> {
        self.inner.random_session()
    }

    async fn session_status(&self, client_id: &str) -> Option<SessionStatus> {
        self.inner.session_status(client_id).await
    }

    async fn client_states_count(&self) -> usize {
        self.inner.client_states_count().await
    }

    fn sessions_count(&self) -> usize {
        self.inner.sessions_count()
    }

    async fn query_subscriptions(&self, q: &SubsSearchParams) -> Vec<SubsSearchResult> {
        self.inner.query_subscriptions(q).await
    }

    async fn subscriptions_count(&self) -> usize {
        self.inner.subscriptions_count().await
    }

    fn grpc_enable(&self) -> bool {
        self.inner.grpc_enable()
    }

    fn node_name(&self, id: NodeId) -> String {
        self.inner.node_name(id)
    }

    async fn check_health(&self) -> Result<HealthInfo> {
        self.inner.check_health().await
    }

    async fn health_status(&self) -> Result<NodeHealthStatus> {
        self.inner.health_status().await
    }

    fn operation_is_busy(&self) -> bool {
        self.inner.operation_is_busy()
    }

    async fn retain_load_with(
        &self,
        topic_filter: &TopicFilter,
        cb: Arc<dyn RetainLoadCallback>,
    ) -> Result<Vec<(NodeId, MsgID)>> {
        self.inner.retain_load_with(topic_filter, cb).await
    }

    async fn retain_set_broadcast(
        &self,
        topic: &TopicName,
        retain: &Retain,
        expiry_interval: Option<Duration>,
    ) -> Result<()> {
        self.inner.retain_set_broadcast(topic, retain, expiry_interval).await
    }

    fn get_grpc_clients(&self) -> GrpcClients {
        self.inner.get_grpc_clients()
    }

    async fn message_load(
        &self,
        client_id: &str,
        topic_filter: &str,
        group: Option<&SharedGroup>,
    ) -> Result<Vec<(MsgID, From, Publish)>> {
        self.inner.message_load(client_id, topic_filter, group).await
    }

    async fn message_load_with(
        &self,
        client_id: &str,
        topic_filter: &str,
        group: Option<&SharedGroup>,
        cb: Arc<dyn MessageLoadCallback>,
    ) -> Result<()> {
        self.inner.message_load_with(client_id, topic_filter, group, cb).await
    }

    async fn message_mark_forwarded(
        &self,
        from_node_id: NodeId,
        msg_id: MsgID,
        recipients: ForwardedRecipients,
    ) -> Result<()> {
        self.inner.message_mark_forwarded(from_node_id, msg_id, recipients).await
    }
}
