//! The fallback broker: a complete MQTT 3.1.1/5 broker (the rmqtt engine, used as a library)
//! whose authentication and authorization are the mosquitto-oauth core, with the Mosquitto
//! plugin's semantics. Our code is the glue: configuration ([`config`]), the decisions
//! ([`policy`]), the one engine hook handler ([`hooks`]), users files ([`passwd`]), `$SYS`
//! counters ([`sys`]), shared subscriptions ([`shared_subscriptions`]), session takeover
//! ([`session_takeover`]), storage across restarts ([`storage`]), the cluster ([`cluster`]), logging and the server
//! assembly ([`server`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod hooks;
pub mod logging;
pub mod passwd;
pub mod policy;
pub mod server;
pub mod session_takeover;
pub mod shared_subscriptions;
pub mod storage;
pub mod sys;
