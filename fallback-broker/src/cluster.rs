//! `[cluster]`: several fallback brokers as one, on rmqtt's own raft cluster plugin
//! (`rmqtt-cluster-raft`). We write no cluster code: the plugin replicates the routing table
//! (which node holds which client id and subscription) with raft, and sends messages, kicks and
//! retained messages between nodes over each node's gRPC service.
//!
//! Every node runs the same policy on its own clients: the login and every check happen on the
//! node the client is connected to, a message forwarded from another node is delivered through
//! the receiving node's read check (rmqtt runs `MessageDelivered` there, with the subscriber's
//! session), and revalidation and expiry kick the clients of the node that holds them. A
//! client id connecting to a second node makes the cluster kick its session on the first one
//! and hand the session over; the new connection has passed our login first, like any other.
//!
//! Neither port authenticates its peer (rmqtt 0.24 has no TLS or credentials for them): whoever
//! reaches them can inject messages and kicks. They belong on a private network, which the start
//! log says when an address is not a loopback or private one.

use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use rmqtt::context::ServerContext;

use crate::config::{ClusterConfig, ClusterNode};
use crate::server::StartError;

/// The engine's plugin name, under which its configuration is looked up.
pub const PLUGIN_NAME: &str = "rmqtt-cluster-raft";

/// The cluster plugin's configuration.
pub fn plugin_config(cluster: &ClusterConfig) -> String {
    let addresses = |pick: fn(&ClusterNode) -> &str| -> toml::Value {
        cluster
            .nodes
            .iter()
            .map(|node| toml::Value::from(format!("{}@{}", node.id, pick(node))))
            .collect::<Vec<_>>()
            .into()
    };
    let mut config = toml::Table::new();
    config.insert("node_grpc_addrs".into(), addresses(|node| &node.grpc));
    config.insert("raft_peer_addrs".into(), addresses(|node| &node.raft));
    config.insert("leader_id".into(), to_toml_integer(cluster.founder()));
    // The raft runtime's own threads; its default (6) is sized for a dedicated server.
    config.insert("worker_threads".into(), 2.into());
    // A kick or forward to a node that died is given up after this (the session takeover of
    // its clients waits that long once).
    config.insert("node_grpc_client_timeout".into(), "5s".into());
    // Raft proposals are batched, and one made within the batch timeout (200 ms by default) of
    // the previous batch waits for it, until a raft tick at the earliest. A login makes two in
    // a row (the client id's lock, then its registration), a logout two more: no batch window
    // and a 10 ms tick keep a login at a few milliseconds instead of 100 to 400.
    // Giving a `raft` table turns the plugin's SO_REUSEADDR default for the raft port on (it is
    // off without one), and with it on a joining node failed to bind its raft port
    // (EADDRINUSE) in every 3-node start on loopback: keep it off.
    let raft = toml::Table::from_iter([
        ("proposal_batch_timeout".to_owned(), "0ms".into()),
        ("heartbeat".to_owned(), format!("{}ms", RAFT_TICK.as_millis()).into()),
        ("heartbeat_tick".to_owned(), ticks(RAFT_HEARTBEAT).into()),
        ("election_tick".to_owned(), ticks(RAFT_ELECTION_TIMEOUT).into()),
        ("grpc_reuseaddr".to_owned(), false.into()),
    ]);
    config.insert("raft".into(), raft.into());
    config.to_string()
}

/// How often the raft node wakes up; a proposal that arrives in the same millisecond as the
/// previous batch waits for the next wake-up (rmqtt's default, 100 ms, made a login after a
/// logout take 100 ms).
const RAFT_TICK: Duration = Duration::from_millis(10);
/// The leader's heartbeats and the election timeout, kept at rmqtt's defaults (in time, not
/// in ticks): shorter ones would start elections on a briefly busy machine.
const RAFT_HEARTBEAT: Duration = Duration::from_millis(500);
const RAFT_ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

fn ticks(period: Duration) -> i64 {
    i64::try_from(period.as_millis() / RAFT_TICK.as_millis()).unwrap_or(i64::MAX)
}

fn to_toml_integer(id: u64) -> toml::Value {
    // Node ids are checked to fit in a u32 when parsed.
    toml::Value::Integer(i64::try_from(id).unwrap_or(i64::MAX))
}

/// Starts this node's gRPC service and joins (or founds) the cluster. Returns once the node
/// serves the cluster's routing table; the engine's `Shared` and `Router` are the cluster's
/// from then on.
pub async fn join(scx: &ServerContext, cluster: &ClusterConfig) -> Result<(), StartError> {
    let (index, node) =
        cluster.nodes.iter().enumerate().find(|(_, node)| node.id == cluster.node_id).ok_or_else(
            || StartError("option cluster.node_id: not among cluster.nodes".to_owned()),
        )?;
    for (index, other) in cluster.nodes.iter().enumerate() {
        for (name, address) in [("grpc", &other.grpc), ("raft", &other.raft)] {
            if !is_private(address) {
                log::warn!(
                    "cluster.nodes[{index}].{name} ({address}) is not a loopback or private \
                     address: the cluster's ports carry no authentication, keep them off \
                     untrusted networks"
                );
            }
        }
    }
    // The engine's gRPC server only logs a failure to bind, from a task, and the raft node
    // exits the process with -1: bind once here so that a port in use stops the broker with
    // the option's name.
    let grpc = can_listen(&format!("cluster.nodes[{index}].grpc"), &node.grpc)?;
    can_listen(&format!("cluster.nodes[{index}].raft"), &node.raft)?;
    scx.node.start_grpc_server(scx.clone(), grpc, true, false);
    log::info!(
        "cluster node {}: gRPC on {grpc}, raft on {}; joining (node {} founds the cluster)",
        node.id,
        node.raft,
        cluster.founder()
    );
    rmqtt_cluster_raft::register(scx, true, false)
        .await
        .map_err(|e| StartError(format!("cannot join the cluster: {e}")))?;
    log::info!("cluster node {}: joined", node.id);
    Ok(())
}

/// The address `key` names, once a listener could be bound to it (and closed again).
fn can_listen(key: &str, address: &str) -> Result<SocketAddr, StartError> {
    let socket = address
        .to_socket_addrs()
        .map_err(|e| StartError(format!("option {key}: cannot resolve {address}: {e}")))?
        .next()
        .ok_or_else(|| StartError(format!("option {key}: {address} resolves to no address")))?;
    TcpListener::bind(socket)
        .map_err(|e| StartError(format!("option {key}: cannot listen on {socket}: {e}")))?;
    Ok(socket)
}

/// Whether `host:port` names a loopback or private-network address (names that do not resolve
/// now count as not private: the warning is then worth reading).
fn is_private(address: &str) -> bool {
    address.to_socket_addrs().is_ok_and(|mut resolved| {
        resolved.all(|socket| match socket.ip() {
            IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
            IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_nodes() -> ClusterConfig {
        ClusterConfig {
            node_id: 2,
            nodes: (1..=3)
                .map(|id| ClusterNode {
                    id,
                    grpc: format!("127.0.0.1:{}", 5362 + id),
                    raft: format!("127.0.0.1:{}", 6002 + id),
                })
                .collect(),
        }
    }

    fn addresses(config: &toml::Table, key: &str) -> Vec<String> {
        let list = config[key].as_array().expect("a list");
        list.iter().map(|v| v.as_str().expect("a string").to_owned()).collect()
    }

    #[test]
    fn every_node_names_the_lowest_id_as_founder_and_lists_all_peers() {
        let config: toml::Table = plugin_config(&three_nodes()).parse().expect("TOML");
        assert_eq!(config["leader_id"].as_integer(), Some(1));
        assert_eq!(
            addresses(&config, "node_grpc_addrs"),
            ["1@127.0.0.1:5363", "2@127.0.0.1:5364", "3@127.0.0.1:5365"]
        );
        assert_eq!(
            addresses(&config, "raft_peer_addrs"),
            ["1@127.0.0.1:6003", "2@127.0.0.1:6004", "3@127.0.0.1:6005"]
        );
    }

    #[test]
    fn public_cluster_addresses_are_flagged_and_private_ones_are_not() {
        for (address, private) in [
            ("127.0.0.1:5363", true),
            ("10.1.2.3:5363", true),
            ("192.168.0.9:5363", true),
            ("[::1]:5363", true),
            ("[fd00::1]:5363", true),
            ("8.8.8.8:5363", false),
            ("0.0.0.0:5363", false),
        ] {
            assert_eq!(is_private(address), private, "{address}");
        }
    }
}
