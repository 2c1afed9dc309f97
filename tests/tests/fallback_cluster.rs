//! The fallback broker as a 3-node raft cluster on loopback (`[cluster]`): every node enforces
//! the same rules on its own clients, messages and sessions cross nodes, and a node killed with
//! SIGKILL does not take the others' clients with it.
//!
//! Needs `cargo build -p fallback-broker` first (see `tests/run-all.sh`).

use std::time::{Duration, Instant};

use mosquitto_oauth_e2e::fallback::{FallbackBroker, auth_lines, start_cluster};
use mosquitto_oauth_e2e::idp::{Idp, TokenRequest};
use mosquitto_oauth_e2e::mqtt::{
    ConnectOptions, ConnectRefused, MqttClient, Properties, PropertyValue, Protocol, RawConnect,
    RawSession, Will, property,
};
use mosquitto_oauth_e2e::scenarios::{QUIET, WAIT, connected};

/// Three nodes with introspection at `idp` and revalidation every second.
fn three_nodes(idp: &Idp) -> Vec<FallbackBroker> {
    let auth = auth_lines(idp);
    start_cluster(3, |ports| {
        format!(
            "[auth]\n{auth}revalidate_interval = 1\n\n[[listener]]\nbind = \"127.0.0.1:{}\"\n\n\
             [log]\nlevel = \"debug\"\n",
            ports.main
        )
    })
}

/// Publishes probes on `topic` until `subscriber` receives one (its session's route has reached
/// the publisher's node), then drains them.
fn await_route(publisher: &MqttClient, topic: &str, subscriber: &MqttClient) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert_eq!(publisher.publish(topic, b"probe", 1, false), Some(0x00));
        if subscriber.recv(Duration::from_millis(100)).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the route to the session never reached {topic}");
    }
    while subscriber.recv(QUIET).is_some() {}
}

/// The payloads `client` receives until nothing arrives for [`QUIET`].
fn payloads(client: &MqttClient) -> Vec<String> {
    let mut received = Vec::new();
    let mut wait = WAIT;
    while let Some(message) = client.recv(wait) {
        received.push(String::from_utf8_lossy(&message.payload).into_owned());
        wait = QUIET;
    }
    received
}

#[test]
fn grants_are_enforced_on_every_node_and_messages_and_sessions_cross_nodes() {
    let idp = Idp::start();
    let nodes = three_nodes(&idp);
    let (a, b, c) = (nodes[0].port(), nodes[1].port(), nodes[2].port());

    // Node B refuses a subscription outside the read grants, as a single broker does.
    let reader_token = idp.opaque_token("device-1", &["mqtt:read:fleet/#"]);
    let reader = connected(b, Protocol::V5, "reader", &reader_token);
    assert_eq!(reader.subscribe("fleet/#", 1), 0x01);
    assert_eq!(reader.subscribe("secret/#", 1), 0x87);
    let narrow_token = idp.opaque_token("device-2", &["mqtt:read:fleet/dev-2/#"]);
    let narrow = connected(c, Protocol::V5, "narrow", &narrow_token);
    assert_eq!(narrow.subscribe("fleet/dev-2/#", 1), 0x01);

    // Node A refuses a publish outside the write grants: no node delivers it.
    let writer_token = idp.opaque_token("device-3", &["mqtt:write:fleet/dev-1/#"]);
    let writer = connected(a, Protocol::V5, "writer", &writer_token);
    assert_eq!(writer.publish("fleet/dev-2/t", b"forged", 1, false), Some(0x87));
    assert_eq!(writer.publish("fleet/dev-1/t", b"one", 1, false), Some(0x00));
    assert_eq!(payloads(&reader), ["one"], "node B delivers what node A accepted");
    assert!(narrow.expect_nothing(QUIET), "node C delivers nothing outside its client's grants");
    nodes[0].expect_log("denied Write on \"fleet/dev-2/t\" for \"writer\"", WAIT);

    // A shared group with members on two nodes gets each message once, from both.
    let worker_token = idp.opaque_token("device-1", &["mqtt:read:fleet/#"]);
    let worker_a = connected(a, Protocol::V5, "worker-a", &worker_token);
    let worker_b = connected(b, Protocol::V5, "worker-b", &worker_token);
    for worker in [&worker_a, &worker_b] {
        assert_eq!(worker.subscribe("$share/workers/fleet/dev-1/#", 1), 0x01);
        assert_eq!(worker.subscribe("$share/workers/secret/#", 1), 0x87);
    }
    let sent: Vec<String> = (0..8).map(|n| format!("job-{n}")).collect();
    for job in &sent {
        assert_eq!(writer.publish("fleet/dev-1/jobs", job.as_bytes(), 1, false), Some(0x00));
    }
    let (on_a, on_b) = (payloads(&worker_a), payloads(&worker_b));
    assert!(!on_a.is_empty() && !on_b.is_empty(), "not balanced: {on_a:?} / {on_b:?}");
    let mut shared: Vec<String> = on_a.into_iter().chain(on_b).collect();
    shared.sort();
    assert_eq!(shared, sent, "each message once across the group");
    assert_eq!(payloads(&reader).len(), sent.len(), "the plain subscriber gets every one");

    // A durable session left on node A is taken over by its client id on node C, with its
    // subscription and the message queued for it while it was away.
    let mobile_token = idp.opaque_token("device-2", &["mqtt:read:fleet/#"]);
    let durable = || {
        ConnectOptions::new("mobile")
            .credentials("mobile", &mobile_token)
            .clean(false)
            .session_expiry(600)
    };
    let on_a = MqttClient::connect(a, Protocol::V5, durable()).expect("mobile on node A");
    assert_eq!(on_a.subscribe("fleet/dev-1/#", 1), 0x01);
    on_a.disconnect();
    assert_eq!(writer.publish("fleet/dev-1/queued", b"queued", 1, false), Some(0x00));
    let on_c = MqttClient::connect(c, Protocol::V5, durable()).expect("mobile on node C");
    assert!(on_c.connack().session_present, "the session follows the client to node C");
    assert_eq!(payloads(&on_c), ["queued"]);

    // A live connection is taken over as well: node C's connection ends. Messages follow the
    // session once the routing table's update is applied on the publisher's node (a message
    // published in that moment can miss the session, see fallback-broker/README).
    let back_on_a = MqttClient::connect(a, Protocol::V5, durable()).expect("mobile on node A");
    assert!(back_on_a.connack().session_present);
    assert!(on_c.wait_disconnected(WAIT).is_some(), "node C still holds the old connection");
    await_route(&writer, "fleet/dev-1/probe", &back_on_a);
    assert_eq!(writer.publish("fleet/dev-1/moved", b"after", 1, false), Some(0x00));
    assert_eq!(payloads(&back_on_a), ["after"]);

    // A durable subscription made on node A under a wide grant moves with its session to node
    // B, whose client logged in with a narrower token: node B delivers what node C publishes
    // only where the new token may read.
    let wide = idp.opaque_token("device-1", &["mqtt:read:devices/#"]);
    let narrow = idp.opaque_token("device-1", &["mqtt:read:devices/a/#"]);
    let publisher_token = idp.opaque_token("device-3", &["mqtt:write:devices/#"]);
    let options =
        |token: &str| ConnectOptions::new("watcher").credentials("watcher", token).clean(false);
    let watcher = MqttClient::connect(a, Protocol::V311, options(&wide)).expect("on node A");
    assert_eq!(watcher.subscribe("devices/#", 1), 0x01);
    watcher.disconnect();
    let watcher = MqttClient::connect(b, Protocol::V311, options(&narrow)).expect("on node B");
    assert!(watcher.connack().session_present);
    let publisher = connected(c, Protocol::V5, "publisher", &publisher_token);
    await_route(&publisher, "devices/a/probe", &watcher);
    assert_eq!(publisher.publish("devices/b/x", b"hidden", 1, false), Some(0x00));
    assert_eq!(publisher.publish("devices/a/x", b"visible", 1, false), Some(0x00));
    assert_eq!(payloads(&watcher), ["visible"]);
    nodes[1].expect_log("denied delivery of \"devices/b/x\" to \"watcher\"", WAIT);

    for node in [&nodes[0], &nodes[2]] {
        node.expect_log("client \"mobile\" accepted", WAIT);
    }
}

#[test]
fn revocation_and_expiry_disconnect_a_client_on_the_node_that_holds_it() {
    let idp = Idp::start();
    let nodes = three_nodes(&idp);

    let revoked_token = idp.opaque_token("device-1", &["mqtt:read:r/#"]);
    let revoked = connected(nodes[1].port(), Protocol::V5, "revoked", &revoked_token);
    let expiring_token = idp.token(&TokenRequest::new("device-2", &["mqtt:read:r/#"]).ttl_secs(4));
    let expiring = connected(nodes[2].port(), Protocol::V5, "expiring", &expiring_token);
    let bystander_token = idp.opaque_token("device-3", &["mqtt:read:r/#"]);
    let bystander = connected(nodes[0].port(), Protocol::V5, "bystander", &bystander_token);
    // Still valid at the first revalidations.
    assert!(revoked.wait_disconnected(Duration::from_millis(1_500)).is_none());

    idp.revoke("device-1", &revoked_token);
    let revoked_at = Instant::now();
    revoked.wait_disconnected(WAIT).expect("the revoked client is disconnected");
    assert!(revoked_at.elapsed() < Duration::from_millis(2_500), "took {:?}", revoked_at.elapsed());
    let kick = "disconnecting client \"revoked\": token no longer valid (token is not active)";
    nodes[1].expect_log(kick, WAIT);

    expiring.wait_disconnected(Duration::from_secs(10)).expect("disconnected at exp");
    nodes[2].expect_log("disconnecting client \"expiring\": its token has expired", WAIT);

    // Each decision is logged by the node that made it, and nobody else was touched.
    for (index, node) in nodes.iter().enumerate() {
        let log = node.log();
        assert_eq!(log.contains(kick), index == 1, "node {}", index + 1);
        assert_eq!(log.contains("\"expiring\": its token has expired"), index == 2);
    }
    // A CONNECT with the bystander's client id and a worthless token, on another node, is
    // refused before the cluster looks for the id, so it takes nothing over.
    assert_eq!(
        mosquitto_oauth_e2e::scenarios::connect(
            nodes[2].port(),
            Protocol::V5,
            "bystander",
            "not-a-token"
        )
        .err(),
        Some(ConnectRefused::Code(0x87))
    );
    assert!(bystander.ping(WAIT), "a client with a valid token stays connected");
    // A revoked token is refused on every node, not only the one that noticed.
    for node in &nodes {
        assert!(
            mosquitto_oauth_e2e::scenarios::connect(
                node.port(),
                Protocol::V5,
                "revoked",
                &revoked_token
            )
            .is_err()
        );
    }
}

#[test]
fn a_node_killed_with_sigkill_does_not_lose_the_other_nodes_clients() {
    let idp = Idp::start();
    let mut nodes = three_nodes(&idp);
    let token = idp.opaque_token("device-1", &["mqtt:read:t/#", "mqtt:write:t/#"]);
    let publisher = connected(nodes[0].port(), Protocol::V5, "publisher", &token);
    let subscriber = connected(nodes[1].port(), Protocol::V5, "subscriber", &token);
    assert_eq!(subscriber.subscribe("t/#", 1), 0x01);
    let doomed = connected(nodes[2].port(), Protocol::V5, "doomed", &token);
    assert_eq!(doomed.subscribe("t/#", 1), 0x01);

    let mut sent = Vec::new();
    for n in 0..30 {
        if n == 10 {
            nodes[2].signal("KILL");
            assert!(doomed.wait_disconnected(WAIT).is_some(), "node C is gone");
            assert!(nodes[2].exited().is_some() || doomed.wait_disconnected(WAIT).is_some());
        }
        let payload = format!("m{n}");
        assert_eq!(publisher.publish("t/x", payload.as_bytes(), 1, false), Some(0x00), "{payload}");
        sent.push(payload);
    }
    // Nothing is lost. The order is not compared: rmqtt-cluster-raft forwards each message
    // between nodes in a task of its own, on both ends, so messages crossing nodes can
    // overtake each other (documented in fallback-broker/README).
    let mut received = payloads(&subscriber);
    received.sort();
    sent.sort();
    assert_eq!(received, sent, "node B lost messages from node A");
    assert!(publisher.ping(WAIT) && subscriber.ping(WAIT));

    // The dead node's client reconnects to a live node and is admitted there.
    let started = Instant::now();
    let moved = connected(nodes[0].port(), Protocol::V5, "doomed", &token);
    assert_eq!(moved.subscribe("t/#", 1), 0x01);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(publisher.publish("t/y", b"again", 1, false), Some(0x00));
    assert_eq!(payloads(&moved), ["again"]);
    drop(nodes.remove(2));
}

/// The first of `count` consecutive ports that are free now, none of them in `taken`.
fn consecutive_free_ports(count: u16, taken: &mut Vec<u16>) -> u16 {
    loop {
        let first = mosquitto_oauth_e2e::free_port();
        let ports: Vec<u16> = (0..count).filter_map(|n| first.checked_add(n)).collect();
        let free = ports.len() == usize::from(count)
            && ports.iter().all(|port| {
                !taken.contains(port) && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
            });
        if free {
            taken.extend(ports);
            return first;
        }
    }
}

/// The documented script's process group, killed whole when dropped (the script and its three
/// brokers).
struct ScriptGroup(std::process::Child);

impl Drop for ScriptGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_documented_local_cluster_script_starts_three_nodes_that_share_messages() {
    use std::os::unix::process::CommandExt;

    let idp = Idp::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let common = dir.path().join("common.toml");
    std::fs::write(&common, format!("[auth]\n{}", auth_lines(&idp))).expect("common.toml");
    let mut taken = Vec::new();
    let mqtt = consecutive_free_ports(3, &mut taken);
    let grpc = consecutive_free_ports(3, &mut taken);
    let raft = consecutive_free_ports(3, &mut taken);
    let mut child = std::process::Command::new("bash")
        .arg(mosquitto_oauth_e2e::workspace_root().join("fallback-broker/local-cluster.sh"))
        .arg(&common)
        .arg(dir.path().join("nodes"))
        .env("FALLBACK_BROKER", mosquitto_oauth_e2e::fallback::fallback_binary())
        .env("MQTT_PORT", mqtt.to_string())
        .env("GRPC_PORT", grpc.to_string())
        .env("RAFT_PORT", raft.to_string())
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash runs the script");
    let stdout = child.stdout.take().expect("stdout is piped");
    let _group = ScriptGroup(child);
    mosquitto_oauth_e2e::wait_for_line(stdout, Duration::from_secs(40), |line| {
        line.starts_with("cluster running")
    })
    .expect("the script reports the cluster running");

    let token = idp.opaque_token("device-1", &["mqtt:read:t/#", "mqtt:write:t/#"]);
    let subscriber = connected(mqtt + 1, Protocol::V5, "subscriber", &token);
    assert_eq!(subscriber.subscribe("t/#", 1), 0x01);
    let publisher = connected(mqtt + 2, Protocol::V5, "publisher", &token);
    await_route(&publisher, "t/probe", &subscriber);
    assert_eq!(publisher.publish("t/x", b"across", 1, false), Some(0x00));
    assert_eq!(payloads(&subscriber), ["across"]);
}

#[test]
fn a_cluster_port_in_use_stops_the_node_with_a_line_naming_the_option() {
    let idp = Idp::start();
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let raft = occupied.local_addr().expect("its address").port();
    let auth = auth_lines(&idp);
    let (status, log) =
        mosquitto_oauth_e2e::fallback::FallbackConfig::new().start_expect_exit(|ports| {
            format!(
                "[auth]\n{auth}\n[[listener]]\nbind = \"127.0.0.1:{}\"\n\n[cluster]\nnode_id = 1\n\
             nodes = [{{ id = 1, grpc = \"127.0.0.1:{}\", raft = \"127.0.0.1:{raft}\" }}]\n",
                ports.main, ports.second
            )
        });
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("option cluster.nodes[0].raft: cannot listen on 127.0.0.1:{raft}")),
        "{log}"
    );
}

/// A CONNECT of `client_id` with a session kept 60 s and a will on `topic` delayed by 2 s.
fn with_delayed_will(client_id: &str, token: &str, topic: &str) -> RawConnect {
    let mut connect = RawConnect::new(Protocol::V5, client_id);
    connect.username = Some(client_id.as_bytes().to_vec());
    connect.password = Some(token.as_bytes().to_vec());
    connect.properties =
        Properties::new().with(property::SESSION_EXPIRY_INTERVAL, PropertyValue::U32(60));
    let mut will = Will::new(topic, b"gone");
    will.properties = Properties::new().with(property::WILL_DELAY_INTERVAL, PropertyValue::U32(2));
    connect.will = Some(will);
    connect
}

#[test]
fn a_delayed_will_is_cancelled_by_a_reconnect_to_another_node_and_published_across_nodes() {
    let idp = Idp::start();
    let nodes = three_nodes(&idp);
    let watcher_token = idp.opaque_token("device-3", &["mqtt:read:wills/#"]);
    let watcher = connected(nodes[1].port(), Protocol::V5, "watcher", &watcher_token);
    assert_eq!(watcher.subscribe("wills/#", 1), 0x01);
    let token = idp.opaque_token("device-2", &["mqtt:write:wills/#"]);

    // The connection on node A ends abruptly; its client is back on node C within the delay.
    let dropped =
        RawSession::connect(nodes[0].port(), &with_delayed_will("back", &token, "wills/back"));
    assert!(dropped.outcome().is_accepted(), "{:?}", dropped.outcome());
    drop(dropped);
    let back =
        ConnectOptions::new("back").credentials("back", &token).clean(false).session_expiry(60);
    let back = MqttClient::connect(nodes[2].port(), Protocol::V5, back).expect("back on node C");
    assert!(back.connack().session_present);
    assert!(watcher.expect_nothing(Duration::from_secs(3)), "the will was sent anyway");

    // Without a reconnect, node A publishes it after the delay, and node B delivers it.
    let gone =
        RawSession::connect(nodes[0].port(), &with_delayed_will("gone", &token, "wills/gone"));
    assert!(gone.outcome().is_accepted(), "{:?}", gone.outcome());
    drop(gone);
    let will = watcher.recv(WAIT).expect("the delayed will");
    assert_eq!((will.topic.as_str(), will.payload.as_slice()), ("wills/gone", &b"gone"[..]));
}
