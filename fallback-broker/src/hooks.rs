//! The one rmqtt hook handler: translates the engine's hook calls to [`Policy`] decisions and
//! back.
//!
//! | rmqtt hook | what it does here |
//! |---|---|
//! | `ClientAuthenticate` | [`Policy::connect`] on a blocking thread (with the verified client certificate's identity on listeners that require one) → CONNACK code |
//! | `ClientConnected` | attaches the [`Principal`] to the session; token clients get a timer that disconnects them at `exp` |
//! | `ClientDisconnected` | stops the timer |
//! | `ClientSubscribeCheckAcl` | per filter: SUBACK 0x87 (5) / 0x80 (3.1.1) unless inside a read grant |
//! | `MessagePublishCheckAcl` | PUBACK 0x87 (5) / silent drop (3.1.1) unless a write grant matches |
//! | `MessageExpiryCheck` | every delivery (live, retained, queued): dropped unless the subscriber may read it |
//! | `MessagePublish` | wills: a will published after its client's token expired or was revoked is dropped |
//!
//! Besides the hooks, one task re-checks the distinct tokens of the connected clients every
//! `revalidate_interval` and disconnects the clients of revoked tokens.
//!
//! The engine's listeners run with `allow_anonymous(false)`, so the authenticate hook sees every
//! CONNECT, with or without username.

use std::any::Any;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use oauth_core::{Access, Rejection, TokenDigest, now_epoch, policy};
use rmqtt::codec::v5::{self as codec_v5, DisconnectReasonCode, SubscribeAckReason};
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, Priority, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectInfo, Disconnect, From as Origin, FromType, Id, LastWill, Message, Publish,
    PublishAclResult, Reason, SubscribeAclResult, Tx,
};

use crate::config::CertificateIdentity;
use crate::policy::{ConnectRequest, Policy, Principal, Verdict};

/// Priority of our handler: before any other handler of the same hook.
const PRIORITY: Priority = 1_000;
/// A principal accepted at authentication but whose session never came up is dropped after
/// this long (the handshake failed after authentication).
const PENDING_TTL: Duration = Duration::from_secs(60);
/// `create_time` given to a will that must not be delivered: with a one-second expiry it is
/// expired for every subscriber, and our delivery check recognises it too.
const SUPPRESSED_CREATE_TIME: i64 = 0;

/// Every hook type the handler is registered for.
pub const HOOK_TYPES: [Type; 7] = [
    Type::ClientAuthenticate,
    Type::ClientConnected,
    Type::ClientDisconnected,
    Type::ClientSubscribeCheckAcl,
    Type::MessagePublishCheckAcl,
    Type::MessageExpiryCheck,
    Type::MessagePublish,
];

/// A connected token client: what expiry and revalidation need to end it.
struct Watch {
    principal: Arc<Principal>,
    tx: Option<Tx>,
    expiry: Option<tokio::task::AbortHandle>,
}

struct Shared {
    policy: Arc<Policy>,
    /// Listener id -> which certificate name is the identity, for listeners that require
    /// client certificates.
    certificate_listeners: HashMap<u16, CertificateIdentity>,
    pending: Mutex<HashMap<Id, (Arc<Principal>, Instant)>>,
    watches: Mutex<HashMap<Id, Watch>>,
}

/// The hook handler (cheap to clone: one instance is registered per hook type).
#[derive(Clone)]
pub struct OAuthHooks {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OAuthHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthHooks")
            .field("policy", &self.shared.policy)
            .field("token_clients", &self.token_clients())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl OAuthHooks {
    /// A handler deciding with `policy` (expiry and revalidation as its core configuration
    /// says: `disconnect_on_expiry`, `revalidate_interval`), taking certificate logins on the
    /// listeners in `certificate_listeners` (listener id -> identity).
    pub fn new(
        policy: Arc<Policy>,
        certificate_listeners: HashMap<u16, CertificateIdentity>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                policy,
                certificate_listeners,
                pending: Mutex::new(HashMap::new()),
                watches: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Registers the handler for [`HOOK_TYPES`], enables it, and starts the revalidation
    /// rounds.
    pub async fn register(&self, scx: &ServerContext) {
        let register = scx.extends.hook_mgr().register();
        for typ in HOOK_TYPES {
            register.add_priority(typ, PRIORITY, Box::new(self.clone())).await;
        }
        register.start().await;
        let interval = self.shared.policy.authenticator().config().revalidate_interval;
        if !interval.is_zero() {
            tokio::spawn(self.clone().revalidate_forever(interval));
        }
    }

    /// Connected clients that logged in with a token (the plugin's `clients` counter).
    pub fn token_clients(&self) -> usize {
        lock(&self.shared.watches).len()
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.shared.policy
    }

    async fn authenticate(&self, info: &ConnectInfo) -> ReturnType {
        let id = info.id().clone();
        let client_id = info.client_id().to_string();
        let username = info.username().map(|u| u.to_string());
        let password = info.password().map(|p| p.to_vec());
        let will_topic = info.last_will().map(|will| match will {
            LastWill::V3(will) => will.topic.to_string(),
            LastWill::V5(will) => will.topic.to_string(),
        });
        let certificate = self.shared.certificate_listeners.get(&id.lid).copied();
        let certificate_identity = certificate.and_then(|kind| {
            let names = info.cert()?;
            match kind {
                CertificateIdentity::CommonName => names.common_name.clone(),
                CertificateIdentity::Subject => Some(names.subject.clone()),
            }
        });
        let policy = Arc::clone(&self.shared.policy);
        let verdict = tokio::task::spawn_blocking(move || {
            policy.connect(&ConnectRequest {
                client_id: &client_id,
                username: username.as_deref(),
                password: password.as_deref(),
                will_topic: will_topic.as_deref(),
                certificate_listener: certificate.is_some(),
                certificate_identity: certificate_identity.as_deref(),
            })
        })
        .await;
        let result = auth_result(verdict.as_ref());
        match verdict {
            Ok(Verdict::Accept(principal)) => {
                let now = Instant::now();
                let mut pending = lock(&self.shared.pending);
                pending.retain(|_, (_, since)| now.duration_since(*since) < PENDING_TTL);
                pending.insert(id, (principal, now));
            }
            Ok(_) => {}
            Err(panicked) => log::error!("login check failed: {panicked}; refusing the client"),
        }
        (false, Some(HookResult::AuthResult(result)))
    }

    async fn connected(&self, session: &Session) {
        let principal = lock(&self.shared.pending).remove(&session.id).map(|(p, _)| p);
        let Some(principal) = principal else {
            // Cannot happen: every accepted CONNECT went through `authenticate`. Fail closed.
            log::error!("client {:?} has no login record; disconnecting it", session.id.client_id);
            if let Some(tx) = session_tx(session).await {
                close(&tx, "not authorized");
            }
            return;
        };
        if session.attached.set(Arc::clone(&principal) as Arc<dyn Any + Send + Sync>).is_err() {
            // Cannot happen: a session connects once. Its first principal stays.
            log::error!(
                "client {:?} connected twice; keeping its first login",
                session.id.client_id
            );
        }
        let Some(expires_at) = principal.token_client().map(|c| c.session().expires_at()) else {
            return;
        };
        let tx = session_tx(session).await;
        let config = self.shared.policy.authenticator().config();
        let expiry = match (&tx, expires_at) {
            (Some(tx), Some(exp)) if config.disconnect_on_expiry => {
                let hooks = self.clone();
                let (id, principal, tx) = (session.id.clone(), Arc::clone(&principal), tx.clone());
                let task = tokio::spawn(async move {
                    tokio::time::sleep_until(epoch_instant(exp).into()).await;
                    // Timers never fire early, but the wall clock may have been set back.
                    while now_epoch() < exp {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    if !tx.is_closed() {
                        policy::log_token_expired(principal.client_id());
                        close(&tx, "token expired");
                    }
                    hooks.forget_watch(&id);
                });
                Some(task.abort_handle())
            }
            _ => None,
        };
        lock(&self.shared.watches).insert(session.id.clone(), Watch { principal, tx, expiry });
    }

    fn forget_watch(&self, id: &Id) {
        if let Some(watch) = lock(&self.shared.watches).remove(id)
            && let Some(task) = watch.expiry
        {
            task.abort();
        }
    }

    /// Every `interval`: checks each distinct token of the connected clients again, bypassing
    /// the cache, and disconnects the clients of tokens found no longer valid (revoked).
    async fn revalidate_forever(self, interval: Duration) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.revalidation_round().await;
        }
    }

    /// One round of the core's revalidation (on a blocking thread: it calls the authorization
    /// server), over the distinct tokens of the connected token clients.
    async fn revalidation_round(&self) {
        let tokens = {
            let mut watches = lock(&self.shared.watches);
            // Sessions that ended without a DISCONNECT hook (failed CONNACK) are dropped here.
            watches.retain(|_, watch| watch.tx.as_ref().is_some_and(|tx| !tx.is_closed()));
            policy::revalidation_tokens(
                watches.values().filter_map(|watch| watch.principal.token_client()),
                oauth_core::now_epoch(),
                self.shared.policy.authenticator().config().revalidate_interval,
            )
        };
        if tokens.is_empty() {
            return;
        }
        let hooks = self.clone();
        let auth = Arc::clone(self.shared.policy.authenticator());
        let round = tokio::task::spawn_blocking(move || {
            policy::run_revalidation_round(
                &auth,
                &tokens,
                policy::RoundLimits::of(&auth),
                || true,
                |digest, reason| hooks.disconnect_token(digest, &reason),
            )
        })
        .await;
        if let Err(panicked) = round {
            log::error!("revalidation failed: {panicked}");
        }
    }

    /// Revokes and disconnects every connected client of a token found no longer valid.
    fn disconnect_token(&self, digest: TokenDigest, reason: &Rejection) {
        let mut watches = lock(&self.shared.watches);
        let ids: Vec<Id> = watches
            .iter()
            .filter(|(_, watch)| {
                watch.principal.token_client().is_some_and(|c| c.session().token_digest() == digest)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let Some(watch) = watches.remove(&id) else { continue };
            if let Some(client) = watch.principal.token_client() {
                client.revoke();
                policy::log_token_invalid(client.client_id(), reason);
            }
            if let Some(tx) = &watch.tx {
                close(tx, "token no longer valid");
            }
            if let Some(task) = watch.expiry {
                task.abort();
            }
        }
    }

    fn acl(&self, session: &Session, access: Access, topic: &str) -> bool {
        match principal_of(session) {
            Some(principal) => self.shared.policy.acl(principal, access, topic),
            None => {
                log::warn!(
                    "denied {access:?} on {topic:?} for {:?}: no login record",
                    session.id.client_id
                );
                false
            }
        }
    }

    /// A will is published after its client is gone, decided like the plugin's check of it:
    /// by the grants as they were when the client left (`Session::allows_offline`), never if
    /// the token was revoked. A session without a login record publishes none (fail closed).
    fn will(&self, session: &Session, publish: &Publish) -> Option<HookResult> {
        let Some(principal) = principal_of(session) else {
            log::warn!("will of {:?} dropped: no login record", session.id.client_id);
            return Some(HookResult::Publish(suppressed(publish)));
        };
        if self.shared.policy.acl(principal, Access::Write, &publish.topic) {
            return None;
        }
        log::info!(
            "will of {:?} on {:?} dropped: its client may no longer write there",
            principal.client_id(),
            publish.topic
        );
        Some(HookResult::Publish(suppressed(publish)))
    }
}

/// A will that must not reach anyone: not retained, and expired for every subscriber (a
/// one-second expiry since the epoch), which our delivery check also recognises.
fn suppressed(publish: &Publish) -> Publish {
    let mut dropped = publish.clone();
    dropped.retain = false;
    dropped.create_time = Some(SUPPRESSED_CREATE_TIME);
    let mut properties = dropped.properties.take().unwrap_or_default();
    properties.message_expiry_interval = NonZeroU32::new(1);
    dropped.properties = Some(properties);
    dropped
}

/// Whether a delivery is a will turned into [`suppressed`].
fn is_suppressed_will(from: &Origin, publish: &Publish) -> bool {
    matches!(from.typ(), FromType::LastWill) && publish.create_time == Some(SUPPRESSED_CREATE_TIME)
}

/// The CONNACK decision for a verdict (panicked checks refuse). Every refusal is "not
/// authorized" (0x87 / 5), as Mosquitto answers every refused login: a device sees the same
/// outcome on either broker.
fn auth_result(verdict: Result<&Verdict, &tokio::task::JoinError>) -> AuthResult {
    match verdict {
        Ok(Verdict::Accept(_)) => AuthResult::Allow(false, None),
        Ok(Verdict::BadCredentials | Verdict::NotAuthorized) | Err(_) => AuthResult::NotAuthorized,
    }
}

/// The principal attached to a session at `ClientConnected` (the engine's `attached`, a
/// `vendor/rmqtt` patch: read without a lock, twice per message).
fn principal_of(session: &Session) -> Option<&Principal> {
    session.attached.get()?.downcast_ref::<Principal>()
}

/// The message channel of exactly this session (not a later one with the same client id).
async fn session_tx(session: &Session) -> Option<Tx> {
    let entry = session.scx.extends.shared().await.entry(session.id.clone());
    match entry.session() {
        Some(current) if current.id == session.id => entry.tx(),
        _ => None,
    }
}

/// Ends a session: an MQTT 5 client receives DISCONNECT 0x87 (not authorized) with `why` as
/// reason string before the socket closes (written by the patched engine, `vendor/rmqtt`); an
/// MQTT 3.1.1 client sees the connection close. The will is handled as for any abrupt end (and
/// dropped if the token no longer allows it).
fn close(tx: &Tx, why: &'static str) {
    let disconnect = codec_v5::Disconnect {
        reason_code: DisconnectReasonCode::NotAuthorized,
        reason_string: Some(why.into()),
        ..Default::default()
    };
    let reason = Reason::ConnectDisconnect(Some(Disconnect::V5(disconnect)));
    if tx.unbounded_send(Message::Closed(reason)).is_err() {
        log::debug!("session already closed");
    }
}

/// The instant at which epoch second `exp` begins.
fn epoch_instant(exp: u64) -> Instant {
    let at = UNIX_EPOCH + Duration::from_secs(exp);
    let left = at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
    Instant::now() + left
}

#[async_trait]
impl Handler for OAuthHooks {
    // The trait elides `Parameter`'s lifetime; naming it here would not match under async_trait.
    #[allow(elided_lifetimes_in_paths)]
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => self.authenticate(info).await,
            Parameter::ClientConnected(session) => {
                self.connected(session).await;
                (true, acc)
            }
            Parameter::ClientDisconnected(session, _) => {
                self.forget_watch(&session.id);
                if let Some(principal) = principal_of(session) {
                    principal.left(now_epoch());
                }
                (true, acc)
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let result = if self.acl(session, Access::Subscribe, &subscribe.topic_filter) {
                    SubscribeAclResult::new_success(subscribe.opts.qos(), None)
                } else {
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let result = if self.acl(session, Access::Write, &publish.topic) {
                    PublishAclResult::allow()
                } else {
                    PublishAclResult::rejected(false, Some("not authorized".into()))
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::MessageExpiryCheck(session, from, publish) => {
                if is_suppressed_will(from, publish)
                    || !self.acl(session, Access::Read, &publish.topic)
                {
                    (false, Some(HookResult::MessageExpiry))
                } else {
                    (true, acc)
                }
            }
            Parameter::MessagePublish(Some(session), from, publish)
                if matches!(from.typ(), FromType::LastWill) =>
            {
                match self.will(session, publish) {
                    Some(result) => (false, Some(result)),
                    None => (true, acc),
                }
            }
            _ => (true, acc),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rmqtt::codec::types::QoS;
    use rmqtt::types::{ClientId, CodecPublish};

    use super::*;
    use crate::policy::Identity;

    fn will(retain: bool) -> Publish {
        Publish::from(CodecPublish {
            dup: false,
            retain,
            qos: QoS::AtLeastOnce,
            topic: "wills/device-1".into(),
            packet_id: None,
            payload: Bytes::from_static(b"gone"),
            properties: None,
        })
        .create_time(1_700_000_000_000)
    }

    fn id() -> Id {
        Id::new(1, 1, None, None, ClientId::from_static("device-1"), None)
    }

    #[test]
    fn a_suppressed_will_is_never_retained_and_expired_for_everyone() {
        let dropped = suppressed(&will(true));
        assert!(!dropped.retain);
        assert_eq!(dropped.topic, "wills/device-1");
        assert_eq!(
            dropped.properties.as_ref().and_then(|p| p.message_expiry_interval),
            NonZeroU32::new(1)
        );
        assert!(is_suppressed_will(&Origin::from_lastwill(id()), &dropped));
        // Only wills carry the mark; an ordinary message with that timestamp is delivered.
        assert!(!is_suppressed_will(&Origin::from_custom(id()), &dropped));
        assert!(!is_suppressed_will(&Origin::from_lastwill(id()), &will(false)));
    }

    #[test]
    fn verdicts_become_connack_decisions() {
        let grants = oauth_core::Grants::default().resolve("c", None);
        let accept = Verdict::Accept(Arc::new(Principal::new("c", Identity::Anonymous { grants })));
        assert!(matches!(auth_result(Ok(&accept)), AuthResult::Allow(false, None)));
        assert!(matches!(auth_result(Ok(&Verdict::BadCredentials)), AuthResult::NotAuthorized));
        assert!(matches!(auth_result(Ok(&Verdict::NotAuthorized)), AuthResult::NotAuthorized));
    }

    #[test]
    fn expiry_timers_aim_at_the_start_of_the_exp_second() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let past = epoch_instant(now.as_secs().saturating_sub(10));
        assert!(past <= Instant::now());
        let exp = now.as_secs() + 3;
        let left = epoch_instant(exp).saturating_duration_since(Instant::now());
        let expected = Duration::from_secs(exp).saturating_sub(now);
        assert!(left <= expected && expected - left < Duration::from_millis(100), "{left:?}");
    }
}
