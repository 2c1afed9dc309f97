//! MQTT clients for end-to-end tests that report the exact codes a broker sends.
//!
//! Everything here speaks MQTT 3.1.1 and 5 over a plain `TcpStream` with a small hand-written
//! codec, so every CONNACK, SUBACK, PUBACK, AUTH and DISCONNECT code reaches the test unchanged
//! and nothing ever reconnects behind the test's back.
//!
//! - [`MqttClient`] is the normal, well-behaved client: a reader thread answers the broker
//!   (PUBACK/PUBREC/PUBCOMP for incoming messages, PINGREQ for keep-alive) and hands messages,
//!   acknowledgements and the end of the connection to the synchronous methods.
//! - [`RawSession`] and the `raw_connect_*` functions are for what a normal client cannot
//!   express: binary or invalid UTF-8 credentials and client ids, MQTT 5 enhanced
//!   authentication (AUTH packets, re-authentication) and hand-made bytes.
//!
//! Every wait has a deadline; nothing sleeps for a fixed time.
//!
//! Why not `rumqttc` for the well-behaved client: it was tried in full (issue #16; every
//! end-to-end test green on it) and left out, because the tests need the exact bytes a broker
//! sends and rumqttc 0.25 does not give them. It reads a DISCONNECT with a reason code and no
//! property length (`e0 01 98`, valid MQTT 5 and what Mosquitto sends when it kicks a client at
//! token expiry) as a plain close, so a test could no longer tell an expiry kick from a
//! dropped socket; it exposes reason codes only as enums without their numeric values (the
//! bridge re-encoded every packet to read them back); it refuses packets over 10 KiB unless the
//! CONNECT announces a Maximum Packet Size, which changes what the broker is tested with; and
//! it leaves empty usernames and passwords out. The bridge made this module 520 lines longer
//! than the client it replaced.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the clients wait for a CONNACK, SUBACK, PUBACK, ... before giving up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the [`MqttClient`] reader thread wakes up to check whether a PINGREQ is due.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long [`MqttClient::disconnect`] waits for the broker to close the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Reason and return codes, named as in the MQTT 3.1.1 and 5 specifications.
pub mod reason {
    /// 3.1.1 CONNACK: connection accepted; 5: success / granted QoS 0 / normal disconnection.
    pub const SUCCESS: u8 = 0x00;
    /// 3.1.1 CONNACK: unacceptable protocol version.
    pub const V311_UNACCEPTABLE_PROTOCOL_VERSION: u8 = 0x01;
    /// 3.1.1 CONNACK: identifier rejected.
    pub const V311_IDENTIFIER_REJECTED: u8 = 0x02;
    /// 3.1.1 CONNACK: server unavailable.
    pub const V311_SERVER_UNAVAILABLE: u8 = 0x03;
    /// 3.1.1 CONNACK: bad user name or password.
    pub const V311_BAD_USERNAME_OR_PASSWORD: u8 = 0x04;
    /// 3.1.1 CONNACK: not authorized.
    pub const V311_NOT_AUTHORIZED: u8 = 0x05;
    /// 3.1.1 SUBACK: failure.
    pub const V311_SUBACK_FAILURE: u8 = 0x80;
    /// 5 SUBACK: granted QoS 1.
    pub const GRANTED_QOS_1: u8 = 0x01;
    /// 5 SUBACK: granted QoS 2.
    pub const GRANTED_QOS_2: u8 = 0x02;
    /// 5 DISCONNECT (client): disconnect with will message.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// 5 PUBACK/PUBREC: no matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// 5 UNSUBACK: no subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// 5 AUTH: continue authentication.
    pub const CONTINUE_AUTHENTICATION: u8 = 0x18;
    /// 5 AUTH: re-authenticate.
    pub const RE_AUTHENTICATE: u8 = 0x19;
    /// 5: unspecified error.
    pub const UNSPECIFIED_ERROR: u8 = 0x80;
    /// 5: malformed packet.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// 5: protocol error.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// 5: implementation specific error.
    pub const IMPLEMENTATION_SPECIFIC_ERROR: u8 = 0x83;
    /// 5: unsupported protocol version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    /// 5: client identifier not valid.
    pub const CLIENT_IDENTIFIER_NOT_VALID: u8 = 0x85;
    /// 5: bad user name or password.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    /// 5: not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// 5: server unavailable.
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    /// 5: server busy.
    pub const SERVER_BUSY: u8 = 0x89;
    /// 5: banned.
    pub const BANNED: u8 = 0x8A;
    /// 5: server shutting down.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// 5: bad authentication method.
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    /// 5: keep alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// 5: session taken over.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// 5: topic filter invalid.
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    /// 5: topic name invalid.
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    /// 5: quota exceeded.
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// 5: administrative action.
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
}

/// MQTT 5 property identifiers.
pub mod property {
    /// Payload Format Indicator (byte).
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    /// Message Expiry Interval (four-byte integer).
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    /// Content Type (string).
    pub const CONTENT_TYPE: u8 = 0x03;
    /// Response Topic (string).
    pub const RESPONSE_TOPIC: u8 = 0x08;
    /// Correlation Data (binary).
    pub const CORRELATION_DATA: u8 = 0x09;
    /// Subscription Identifier (variable byte integer).
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    /// Session Expiry Interval (four-byte integer).
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    /// Assigned Client Identifier (string).
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    /// Server Keep Alive (two-byte integer).
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    /// Authentication Method (string).
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    /// Authentication Data (binary).
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    /// Request Problem Information (byte).
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    /// Will Delay Interval (four-byte integer).
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    /// Request Response Information (byte).
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    /// Response Information (string).
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    /// Server Reference (string).
    pub const SERVER_REFERENCE: u8 = 0x1C;
    /// Reason String (string).
    pub const REASON_STRING: u8 = 0x1F;
    /// Receive Maximum (two-byte integer).
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    /// Topic Alias Maximum (two-byte integer).
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    /// Topic Alias (two-byte integer).
    pub const TOPIC_ALIAS: u8 = 0x23;
    /// Maximum QoS (byte).
    pub const MAXIMUM_QOS: u8 = 0x24;
    /// Retain Available (byte).
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    /// User Property (string pair).
    pub const USER_PROPERTY: u8 = 0x26;
    /// Maximum Packet Size (four-byte integer).
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    /// Wildcard Subscription Available (byte).
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    /// Subscription Identifier Available (byte).
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    /// Shared Subscription Available (byte).
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// The MQTT protocol version a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5 (protocol level 5).
    V5,
}

impl Protocol {
    fn level(self) -> u8 {
        match self {
            Self::V311 => 4,
            Self::V5 => 5,
        }
    }

    fn is_v5(self) -> bool {
        self == Self::V5
    }
}

/// The value of one MQTT 5 property; the variant follows the property's data type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// A byte.
    Byte(u8),
    /// A two-byte integer.
    U16(u16),
    /// A four-byte integer.
    U32(u32),
    /// A variable byte integer.
    VarInt(u32),
    /// A UTF-8 string (decoded lossily: invalid UTF-8 from a broker shows as U+FFFD).
    String(String),
    /// Binary data.
    Binary(Vec<u8>),
    /// A UTF-8 string pair (user property).
    Pair(String, String),
}

/// MQTT 5 properties in wire order, as `(identifier, value)` (see [`property`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(pub Vec<(u8, PropertyValue)>);

impl Properties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a property (builder style).
    #[must_use]
    pub fn with(mut self, id: u8, value: PropertyValue) -> Self {
        self.0.push((id, value));
        self
    }

    /// True if there are no properties.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first property with identifier `id`.
    pub fn get(&self, id: u8) -> Option<&PropertyValue> {
        self.0.iter().find(|(key, _)| *key == id).map(|(_, value)| value)
    }

    /// The first string property with identifier `id`.
    pub fn string(&self, id: u8) -> Option<&str> {
        match self.get(id) {
            Some(PropertyValue::String(text)) => Some(text),
            _ => None,
        }
    }

    /// The first binary property with identifier `id`.
    pub fn binary(&self, id: u8) -> Option<&[u8]> {
        match self.get(id) {
            Some(PropertyValue::Binary(data)) => Some(data),
            _ => None,
        }
    }

    /// The first integer property (byte, two-byte, four-byte or variable) with identifier `id`.
    pub fn integer(&self, id: u8) -> Option<u32> {
        match self.get(id)? {
            PropertyValue::Byte(value) => Some(u32::from(*value)),
            PropertyValue::U16(value) => Some(u32::from(*value)),
            PropertyValue::U32(value) | PropertyValue::VarInt(value) => Some(*value),
            _ => None,
        }
    }

    /// The Reason String property, if any.
    pub fn reason_string(&self) -> Option<&str> {
        self.string(property::REASON_STRING)
    }

    /// All User Property pairs, in order.
    pub fn user_properties(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .filter_map(|(_, value)| match value {
                PropertyValue::Pair(key, value) => Some((key.as_str(), value.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// An application message received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Topic name (decoded lossily if not UTF-8).
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// QoS of the delivery (0, 1 or 2).
    pub qos: u8,
    /// The RETAIN flag: set when the message comes from the retained store.
    pub retain: bool,
    /// The DUP flag.
    pub dup: bool,
    /// Packet identifier (QoS 1 and 2).
    pub packet_id: Option<u16>,
    /// MQTT 5 PUBLISH properties (empty on 3.1.1).
    pub properties: Properties,
}

/// A decoded control packet as the broker sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNACK.
    Connack {
        /// Session Present flag.
        session_present: bool,
        /// Return code (3.1.1) or reason code (5).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// PUBLISH.
    Publish(Received),
    /// PUBACK.
    Puback {
        /// Packet identifier.
        packet_id: u16,
        /// Reason code (0 on 3.1.1 or when omitted).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// PUBREC.
    Pubrec {
        /// Packet identifier.
        packet_id: u16,
        /// Reason code (0 on 3.1.1 or when omitted).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// PUBREL.
    Pubrel {
        /// Packet identifier.
        packet_id: u16,
        /// Reason code (0 on 3.1.1 or when omitted).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// PUBCOMP.
    Pubcomp {
        /// Packet identifier.
        packet_id: u16,
        /// Reason code (0 on 3.1.1 or when omitted).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// SUBACK.
    Suback {
        /// Packet identifier.
        packet_id: u16,
        /// One return/reason code per topic filter, in order.
        codes: Vec<u8>,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// UNSUBACK.
    Unsuback {
        /// Packet identifier.
        packet_id: u16,
        /// One reason code per topic filter (MQTT 5; empty on 3.1.1).
        codes: Vec<u8>,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// PINGRESP.
    Pingresp,
    /// DISCONNECT (MQTT 5 from a server).
    Disconnect {
        /// Reason code (0 when omitted).
        code: u8,
        /// Properties (Reason String, Server Reference, ...).
        properties: Properties,
    },
    /// AUTH (MQTT 5).
    Auth {
        /// Reason code (0 when omitted).
        code: u8,
        /// Properties (Authentication Method, Authentication Data, ...).
        properties: Properties,
    },
    /// Any other packet (one a server should not send), undecoded.
    Other {
        /// The fixed header's first byte (type and flags).
        first_byte: u8,
        /// The bytes after the remaining length.
        body: Vec<u8>,
    },
}

/// A last will, sent by the broker if the connection ends without a normal DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will topic.
    pub topic: String,
    /// Will payload.
    pub payload: Vec<u8>,
    /// Will QoS.
    pub qos: u8,
    /// Will retain flag.
    pub retain: bool,
    /// MQTT 5 will properties (e.g. Will Delay Interval).
    pub properties: Properties,
}

impl Will {
    /// A QoS 0, non-retained will.
    pub fn new(topic: &str, payload: &[u8]) -> Self {
        Self {
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            qos: 0,
            retain: false,
            properties: Properties::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut value: u32) {
    assert!(value <= 268_435_455, "{value} does not fit a variable byte integer");
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

/// A two-byte length followed by the bytes (UTF-8 strings and binary data alike).
fn put_binary(out: &mut Vec<u8>, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or_else(|_| {
        panic!("an MQTT string or binary field holds at most 65535 bytes, not {}", data.len())
    });
    put_u16(out, len);
    out.extend_from_slice(data);
}

fn put_properties(out: &mut Vec<u8>, properties: &Properties) {
    let mut body = Vec::new();
    for (id, value) in &properties.0 {
        body.push(*id);
        match value {
            PropertyValue::Byte(byte) => body.push(*byte),
            PropertyValue::U16(number) => put_u16(&mut body, *number),
            PropertyValue::U32(number) => body.extend_from_slice(&number.to_be_bytes()),
            PropertyValue::VarInt(number) => put_varint(&mut body, *number),
            PropertyValue::String(text) => put_binary(&mut body, text.as_bytes()),
            PropertyValue::Binary(data) => put_binary(&mut body, data),
            PropertyValue::Pair(key, value) => {
                put_binary(&mut body, key.as_bytes());
                put_binary(&mut body, value.as_bytes());
            }
        }
    }
    put_varint(out, u32::try_from(body.len()).expect("properties fit in a u32"));
    out.extend_from_slice(&body);
}

/// A complete packet: first byte, remaining length, body.
fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first_byte);
    put_varint(&mut out, u32::try_from(body.len()).expect("packet fits in a u32"));
    out.extend_from_slice(body);
    out
}

/// Everything a CONNECT packet can carry, with byte strings so that invalid UTF-8 and NUL
/// bytes can be sent. Build one with [`RawConnect::new`] and set the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawConnect {
    /// Protocol version.
    pub protocol: Protocol,
    /// Client identifier bytes (may be empty or invalid UTF-8).
    pub client_id: Vec<u8>,
    /// User name bytes (sets the user name flag).
    pub username: Option<Vec<u8>>,
    /// Password bytes (sets the password flag, even without a user name).
    pub password: Option<Vec<u8>>,
    /// Clean session (3.1.1) / clean start (5).
    pub clean: bool,
    /// Keep alive in seconds (0: none).
    pub keep_alive_secs: u16,
    /// Last will.
    pub will: Option<Will>,
    /// MQTT 5 CONNECT properties (ignored on 3.1.1).
    pub properties: Properties,
}

impl RawConnect {
    /// A clean-start CONNECT with keep alive 60 s and no credentials.
    pub fn new(protocol: Protocol, client_id: impl AsRef<[u8]>) -> Self {
        Self {
            protocol,
            client_id: client_id.as_ref().to_vec(),
            username: None,
            password: None,
            clean: true,
            keep_alive_secs: 60,
            will: None,
            properties: Properties::new(),
        }
    }

    /// The encoded CONNECT packet.
    pub fn encode(&self) -> Vec<u8> {
        let v5 = self.protocol.is_v5();
        let mut body = Vec::new();
        put_binary(&mut body, b"MQTT");
        body.push(self.protocol.level());
        let mut flags = 0u8;
        if self.username.is_some() {
            flags |= 0x80;
        }
        if self.password.is_some() {
            flags |= 0x40;
        }
        if let Some(will) = &self.will {
            flags |= 0x04 | ((will.qos & 0x03) << 3);
            if will.retain {
                flags |= 0x20;
            }
        }
        if self.clean {
            flags |= 0x02;
        }
        body.push(flags);
        put_u16(&mut body, self.keep_alive_secs);
        if v5 {
            put_properties(&mut body, &self.properties);
        }
        put_binary(&mut body, &self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                put_properties(&mut body, &will.properties);
            }
            put_binary(&mut body, will.topic.as_bytes());
            put_binary(&mut body, &will.payload);
        }
        if let Some(username) = &self.username {
            put_binary(&mut body, username);
        }
        if let Some(password) = &self.password {
            put_binary(&mut body, password);
        }
        frame(0x10, &body)
    }
}

/// An encoded PUBLISH packet (`packet_id` for QoS 1 and 2).
pub fn encode_publish(
    protocol: Protocol,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    packet_id: Option<u16>,
) -> Vec<u8> {
    encode_publish_with(protocol, topic, payload, qos, retain, packet_id, &Properties::new())
}

/// Like [`encode_publish`], with MQTT 5 `properties`.
pub fn encode_publish_with(
    protocol: Protocol,
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    packet_id: Option<u16>,
    properties: &Properties,
) -> Vec<u8> {
    assert!(qos <= 2, "QoS {qos} does not exist");
    let mut body = Vec::new();
    put_binary(&mut body, topic.as_bytes());
    if let Some(id) = packet_id {
        put_u16(&mut body, id);
    }
    if protocol.is_v5() {
        put_properties(&mut body, properties);
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1) | u8::from(retain), &body)
}

/// An encoded SUBSCRIBE packet.
pub fn encode_subscribe(protocol: Protocol, packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u16(&mut body, packet_id);
    if protocol.is_v5() {
        put_properties(&mut body, &Properties::new());
    }
    for (filter, qos) in filters {
        put_binary(&mut body, filter.as_bytes());
        body.push(*qos);
    }
    frame(0x82, &body)
}

fn encode_unsubscribe(protocol: Protocol, packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    put_u16(&mut body, packet_id);
    if protocol.is_v5() {
        put_properties(&mut body, &Properties::new());
    }
    for filter in filters {
        put_binary(&mut body, filter.as_bytes());
    }
    frame(0xA2, &body)
}

/// PUBACK (0x40), PUBREC (0x50), PUBREL (0x62), PUBCOMP (0x70) with reason code 0 (the short
/// form, valid in both versions).
fn encode_ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    frame(first_byte, &packet_id.to_be_bytes())
}

fn encode_auth(code: u8, method: &str, data: &[u8]) -> Vec<u8> {
    let properties = Properties::new()
        .with(property::AUTHENTICATION_METHOD, PropertyValue::String(method.to_owned()))
        .with(property::AUTHENTICATION_DATA, PropertyValue::Binary(data.to_vec()));
    let mut body = vec![code];
    put_properties(&mut body, &properties);
    frame(0xF0, &body)
}

const PINGREQ: [u8; 2] = [0xC0, 0x00];
const DISCONNECT: [u8; 2] = [0xE0, 0x00];

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.remaining() < n {
            return Err(format!("needs {n} more bytes, has {}", self.remaining()));
        }
        let slice = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn rest(&mut self) -> &'a [u8] {
        let slice = &self.data[self.pos..];
        self.pos = self.data.len();
        slice
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn varint(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for index in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("variable byte integer longer than 4 bytes".to_owned())
    }

    fn binary(&mut self) -> Result<Vec<u8>, String> {
        let len = self.u16()?;
        Ok(self.take(usize::from(len))?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(&self.binary()?).into_owned())
    }

    fn properties(&mut self) -> Result<Properties, String> {
        let len = usize::try_from(self.varint()?).expect("u32 fits usize");
        let mut cursor = Cursor::new(self.take(len)?);
        let mut properties = Properties::new();
        while cursor.remaining() > 0 {
            let id = cursor.u8()?;
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
                    PropertyValue::Byte(cursor.u8()?)
                }
                0x13 | 0x21 | 0x22 | 0x23 => PropertyValue::U16(cursor.u16()?),
                0x02 | 0x11 | 0x18 | 0x27 => PropertyValue::U32(cursor.u32()?),
                0x0B => PropertyValue::VarInt(cursor.varint()?),
                0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => {
                    PropertyValue::String(cursor.string()?)
                }
                0x09 | 0x16 => PropertyValue::Binary(cursor.binary()?),
                0x26 => PropertyValue::Pair(cursor.string()?, cursor.string()?),
                other => return Err(format!("unknown property identifier 0x{other:02X}")),
            };
            properties.0.push((id, value));
        }
        Ok(properties)
    }

    /// Reason code and properties of packets where both may be omitted (PUBACK family after the
    /// packet id, DISCONNECT, AUTH).
    fn optional_code_and_properties(
        &mut self,
        protocol: Protocol,
    ) -> Result<(u8, Properties), String> {
        if !protocol.is_v5() || self.remaining() == 0 {
            return Ok((0, Properties::new()));
        }
        let code = self.u8()?;
        let properties = if self.remaining() > 0 { self.properties()? } else { Properties::new() };
        Ok((code, properties))
    }
}

/// Decodes one packet (first byte and the bytes after the remaining length).
fn decode(protocol: Protocol, first_byte: u8, body: &[u8]) -> Result<Packet, String> {
    let v5 = protocol.is_v5();
    let mut c = Cursor::new(body);
    let packet = match first_byte >> 4 {
        2 => {
            let session_present = c.u8()? & 0x01 == 1;
            let code = c.u8()?;
            let properties =
                if v5 && c.remaining() > 0 { c.properties()? } else { Properties::new() };
            Packet::Connack { session_present, code, properties }
        }
        3 => {
            let qos = (first_byte >> 1) & 0x03;
            let topic = c.string()?;
            let packet_id = if qos > 0 { Some(c.u16()?) } else { None };
            let properties = if v5 { c.properties()? } else { Properties::new() };
            let payload = c.rest().to_vec();
            Packet::Publish(Received {
                topic,
                payload,
                qos,
                retain: first_byte & 0x01 == 1,
                dup: first_byte & 0x08 != 0,
                packet_id,
                properties,
            })
        }
        kind @ 4..=7 => {
            let packet_id = c.u16()?;
            let (code, properties) = c.optional_code_and_properties(protocol)?;
            match kind {
                4 => Packet::Puback { packet_id, code, properties },
                5 => Packet::Pubrec { packet_id, code, properties },
                6 => Packet::Pubrel { packet_id, code, properties },
                _ => Packet::Pubcomp { packet_id, code, properties },
            }
        }
        kind @ (9 | 11) => {
            let packet_id = c.u16()?;
            let properties = if v5 { c.properties()? } else { Properties::new() };
            let codes = c.rest().to_vec();
            if kind == 9 {
                Packet::Suback { packet_id, codes, properties }
            } else {
                Packet::Unsuback { packet_id, codes, properties }
            }
        }
        13 => Packet::Pingresp,
        14 => {
            let (code, properties) = c.optional_code_and_properties(protocol)?;
            Packet::Disconnect { code, properties }
        }
        15 => {
            let (code, properties) = c.optional_code_and_properties(protocol)?;
            Packet::Auth { code, properties }
        }
        _ => return Ok(Packet::Other { first_byte, body: body.to_vec() }),
    };
    if c.remaining() > 0 {
        return Err(format!("{} trailing bytes after {packet:?}", c.remaining()));
    }
    Ok(packet)
}

/// The result of reading one packet from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRead {
    /// A complete, decoded packet.
    Packet(Packet),
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// The peer closed (or reset) the connection.
    Closed,
    /// The peer sent bytes that are not a valid packet.
    Malformed(String),
}

/// Reads whole packets from a stream, keeping partial data across timeouts.
#[derive(Debug)]
struct PacketReader {
    stream: TcpStream,
    protocol: Protocol,
    buffer: Vec<u8>,
    eof: bool,
}

impl PacketReader {
    fn new(stream: TcpStream, protocol: Protocol) -> Self {
        Self { stream, protocol, buffer: Vec::new(), eof: false }
    }

    /// Splits one complete frame off the buffer.
    fn take_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, String> {
        let mut len = 0usize;
        let mut header_len = None;
        for index in 1..=4 {
            let Some(&byte) = self.buffer.get(index) else { return Ok(None) };
            len |= usize::from(byte & 0x7F) << (7 * (index - 1));
            if byte & 0x80 == 0 {
                header_len = Some(index + 1);
                break;
            }
        }
        let header_len =
            header_len.ok_or_else(|| "remaining length longer than 4 bytes".to_owned())?;
        let total = header_len + len;
        if self.buffer.len() < total {
            return Ok(None);
        }
        let first_byte = self.buffer[0];
        let body = self.buffer[header_len..total].to_vec();
        self.buffer.drain(..total);
        Ok(Some((first_byte, body)))
    }

    fn read(&mut self, deadline: Instant) -> RawRead {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.take_frame() {
                Ok(Some((first_byte, body))) => {
                    return match decode(self.protocol, first_byte, &body) {
                        Ok(packet) => RawRead::Packet(packet),
                        Err(error) => RawRead::Malformed(format!(
                            "packet 0x{first_byte:02X} with {} bytes: {error}",
                            body.len()
                        )),
                    };
                }
                Ok(None) => {}
                Err(error) => return RawRead::Malformed(error),
            }
            if self.eof {
                return RawRead::Closed;
            }
            let now = Instant::now();
            if now >= deadline {
                return RawRead::Timeout;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(wait)).is_err() {
                self.eof = true;
                continue;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn connect_tcp(port: u16) -> TcpStream {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to MQTT port 127.0.0.1:{port}: {e}"));
    stream.set_nodelay(true).expect("TCP_NODELAY can be set");
    stream
}

fn unique_client_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("e2e-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Packet identifiers 1..=65535, wrapping and skipping 0.
#[derive(Debug, Default)]
struct PacketIds(AtomicU16);

impl PacketIds {
    fn next(&self) -> u16 {
        loop {
            let id = self.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if id != 0 {
                return id;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MqttClient
// ---------------------------------------------------------------------------------------------

/// How to connect an [`MqttClient`]. `Default` gives a unique client id, no credentials, clean
/// start, keep alive 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Client identifier (may be empty: the broker assigns one on MQTT 5).
    pub client_id: String,
    /// User name.
    pub username: Option<String>,
    /// Password (binary allowed).
    pub password: Option<Vec<u8>>,
    /// Clean session (3.1.1) / clean start (5).
    pub clean: bool,
    /// Last will.
    pub will: Option<Will>,
    /// Keep alive in seconds; the client sends PINGREQ after half of it without traffic.
    pub keep_alive_secs: u16,
    /// MQTT 5 Session Expiry Interval.
    pub session_expiry_secs: Option<u32>,
    /// MQTT 5 Authentication Method (single-step enhanced authentication; a broker that answers
    /// with AUTH needs a [`RawSession`]).
    pub auth_method: Option<String>,
    /// MQTT 5 Authentication Data.
    pub auth_data: Option<Vec<u8>>,
    /// Extra MQTT 5 CONNECT properties (e.g. user properties).
    pub properties: Properties,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            client_id: unique_client_id(),
            username: None,
            password: None,
            clean: true,
            will: None,
            keep_alive_secs: 60,
            session_expiry_secs: None,
            auth_method: None,
            auth_data: None,
            properties: Properties::new(),
        }
    }
}

impl ConnectOptions {
    /// Default options with this client id.
    pub fn new(client_id: &str) -> Self {
        Self { client_id: client_id.to_owned(), ..Self::default() }
    }

    /// Sets user name and password.
    #[must_use]
    pub fn credentials(mut self, username: &str, password: impl AsRef<[u8]>) -> Self {
        self.username = Some(username.to_owned());
        self.password = Some(password.as_ref().to_vec());
        self
    }

    /// Sets a QoS 0 will.
    #[must_use]
    pub fn will(mut self, topic: &str, payload: &[u8]) -> Self {
        self.will = Some(Will::new(topic, payload));
        self
    }

    /// Sets clean session / clean start.
    #[must_use]
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }

    /// Sets the keep alive.
    #[must_use]
    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive_secs = seconds;
        self
    }

    /// Sets the MQTT 5 session expiry interval.
    #[must_use]
    pub fn session_expiry(mut self, seconds: u32) -> Self {
        self.session_expiry_secs = Some(seconds);
        self
    }

    /// Sets MQTT 5 Authentication Method and Data.
    #[must_use]
    pub fn auth(mut self, method: &str, data: impl AsRef<[u8]>) -> Self {
        self.auth_method = Some(method.to_owned());
        self.auth_data = Some(data.as_ref().to_vec());
        self
    }

    /// The CONNECT these options describe.
    pub fn to_raw(&self, protocol: Protocol) -> RawConnect {
        let mut properties = Properties::new();
        if let Some(seconds) = self.session_expiry_secs {
            properties.0.push((property::SESSION_EXPIRY_INTERVAL, PropertyValue::U32(seconds)));
        }
        if let Some(method) = &self.auth_method {
            properties
                .0
                .push((property::AUTHENTICATION_METHOD, PropertyValue::String(method.clone())));
        }
        if let Some(data) = &self.auth_data {
            properties.0.push((property::AUTHENTICATION_DATA, PropertyValue::Binary(data.clone())));
        }
        properties.0.extend(self.properties.0.iter().cloned());
        RawConnect {
            protocol,
            client_id: self.client_id.as_bytes().to_vec(),
            username: self.username.as_ref().map(|name| name.as_bytes().to_vec()),
            password: self.password.clone(),
            clean: self.clean,
            keep_alive_secs: self.keep_alive_secs,
            will: self.will.clone(),
            properties,
        }
    }
}

/// Why [`MqttClient::connect`] did not give a connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRefused {
    /// CONNACK with a non-zero return code (3.1.1) or reason code (5).
    Code(u8),
    /// The broker closed the connection without sending CONNACK.
    Closed,
    /// No answer within [`ACK_TIMEOUT`].
    Timeout,
    /// The broker answered with something other than CONNACK (e.g. AUTH: use [`RawSession`]),
    /// or with bytes that are not a valid packet (as [`Packet::Other`] with type 0).
    Unexpected(Packet),
}

impl ConnectRefused {
    /// The CONNACK code, if there was a CONNACK.
    pub fn code(&self) -> Option<u8> {
        match self {
            Self::Code(code) => Some(*code),
            _ => None,
        }
    }
}

/// The CONNACK of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Return/reason code (always 0 here).
    pub code: u8,
    /// MQTT 5 CONNACK properties (Assigned Client Identifier, Server Keep Alive, ...).
    pub properties: Properties,
}

/// How a connection ended from the broker's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectInfo {
    /// The reason code of a DISCONNECT packet from the broker (MQTT 5); `None` if the socket was
    /// closed without one.
    pub reason_code: Option<u8>,
    /// The DISCONNECT properties (e.g. Reason String).
    pub properties: Properties,
    /// Set if the broker sent bytes that are not a valid packet.
    pub malformed: Option<String>,
}

/// Why a request on an [`MqttClient`] got no acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The connection ended first (how, if known).
    Closed(Option<DisconnectInfo>),
    /// No acknowledgement within [`ACK_TIMEOUT`].
    Timeout,
}

#[derive(Debug, Default)]
struct EndState {
    end: Mutex<Option<DisconnectInfo>>,
    changed: Condvar,
}

#[derive(Debug)]
struct Outgoing {
    stream: TcpStream,
    last_send: Instant,
}

impl Outgoing {
    fn send(&mut self, bytes: &[u8]) -> bool {
        self.last_send = Instant::now();
        self.stream.write_all(bytes).and_then(|()| self.stream.flush()).is_ok()
    }
}

/// A connected MQTT 3.1.1 or 5 client with a synchronous API. Dropping it closes the socket
/// without DISCONNECT (so the broker publishes the will); [`disconnect`](Self::disconnect) ends
/// the connection normally.
#[derive(Debug)]
pub struct MqttClient {
    protocol: Protocol,
    connack: ConnAck,
    outgoing: Arc<Mutex<Outgoing>>,
    end: Arc<EndState>,
    messages: Mutex<Receiver<Received>>,
    acks: Mutex<Receiver<Packet>>,
    packet_ids: PacketIds,
    reader: Option<JoinHandle<()>>,
}

impl MqttClient {
    /// Connects to `127.0.0.1:port` and waits for CONNACK. Panics only if TCP cannot connect.
    pub fn connect(
        port: u16,
        protocol: Protocol,
        options: ConnectOptions,
    ) -> Result<MqttClient, ConnectRefused> {
        let stream = connect_tcp(port);
        let mut writer = stream.try_clone().expect("TCP stream can be cloned");
        let mut reader = PacketReader::new(stream, protocol);
        let connect = options.to_raw(protocol).encode();
        if writer.write_all(&connect).is_err() {
            return Err(ConnectRefused::Closed);
        }
        let connack = match reader.read(Instant::now() + ACK_TIMEOUT) {
            RawRead::Packet(Packet::Connack { session_present, code: 0, properties }) => {
                ConnAck { session_present, code: 0, properties }
            }
            RawRead::Packet(Packet::Connack { code, .. }) => {
                return Err(ConnectRefused::Code(code));
            }
            RawRead::Packet(other) => return Err(ConnectRefused::Unexpected(other)),
            RawRead::Closed => return Err(ConnectRefused::Closed),
            RawRead::Timeout => return Err(ConnectRefused::Timeout),
            RawRead::Malformed(error) => {
                return Err(ConnectRefused::Unexpected(Packet::Other {
                    first_byte: 0,
                    body: error.into_bytes(),
                }));
            }
        };
        let outgoing = Arc::new(Mutex::new(Outgoing { stream: writer, last_send: Instant::now() }));
        let end = Arc::new(EndState::default());
        let (message_sender, messages) = mpsc::channel();
        let (ack_sender, acks) = mpsc::channel();
        let keep_alive = Duration::from_secs(u64::from(options.keep_alive_secs));
        let thread = {
            let outgoing = Arc::clone(&outgoing);
            let end = Arc::clone(&end);
            std::thread::Builder::new()
                .name(format!("mqtt-reader-{}", options.client_id))
                .spawn(move || {
                    reader_loop(reader, &outgoing, &end, &message_sender, &ack_sender, keep_alive);
                })
                .expect("reader thread starts")
        };
        Ok(MqttClient {
            protocol,
            connack,
            outgoing,
            end,
            messages: Mutex::new(messages),
            acks: Mutex::new(acks),
            packet_ids: PacketIds::default(),
            reader: Some(thread),
        })
    }

    /// The protocol version of this connection.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The broker's CONNACK.
    pub fn connack(&self) -> &ConnAck {
        &self.connack
    }

    /// Subscribes to one filter; returns the SUBACK code for it (0x00/0x01/0x02 granted QoS;
    /// 0x80 failure on 3.1.1, e.g. 0x87 not authorized on 5). Panics if the connection ends or
    /// no SUBACK arrives.
    pub fn subscribe(&self, filter: &str, qos: u8) -> u8 {
        let codes = self.try_subscribe(&[(filter, qos)]).unwrap_or_else(|error| {
            panic!("no SUBACK for {filter:?}: {error:?}");
        });
        assert_eq!(codes.len(), 1, "SUBACK for one filter has {} codes", codes.len());
        codes[0]
    }

    /// Subscribes to all `filters` at QoS 1 in one SUBSCRIBE packet; returns the SUBACK codes in
    /// order. Panics if the connection ends or no SUBACK arrives.
    pub fn subscribe_many(&self, filters: &[&str]) -> Vec<u8> {
        let filters: Vec<(&str, u8)> = filters.iter().map(|filter| (*filter, 1)).collect();
        self.try_subscribe(&filters)
            .unwrap_or_else(|error| panic!("no SUBACK for {filters:?}: {error:?}"))
    }

    /// Subscribes to `(filter, qos)` pairs in one SUBSCRIBE; the SUBACK codes, or why none came.
    pub fn try_subscribe(&self, filters: &[(&str, u8)]) -> Result<Vec<u8>, ClientError> {
        let id = self.packet_ids.next();
        self.send(&encode_subscribe(self.protocol, id, filters))?;
        match self
            .wait_ack(|p| matches!(p, Packet::Suback { packet_id, .. } if *packet_id == id))?
        {
            Packet::Suback { codes, .. } => Ok(codes),
            other => unreachable!("matched SUBACK, got {other:?}"),
        }
    }

    /// Unsubscribes from `filter`; the UNSUBACK reason code on MQTT 5, 0 on 3.1.1. Panics if no
    /// UNSUBACK arrives.
    pub fn unsubscribe(&self, filter: &str) -> u8 {
        let id = self.packet_ids.next();
        let result = self.send(&encode_unsubscribe(self.protocol, id, &[filter])).and_then(|()| {
            self.wait_ack(|p| matches!(p, Packet::Unsuback { packet_id, .. } if *packet_id == id))
        });
        match result {
            Ok(Packet::Unsuback { codes, .. }) => codes.first().copied().unwrap_or(0),
            Ok(other) => unreachable!("matched UNSUBACK, got {other:?}"),
            Err(error) => panic!("no UNSUBACK for {filter:?}: {error:?}"),
        }
    }

    /// Publishes a message. QoS 0: `None` once written. QoS 1: the PUBACK reason code (always 0
    /// on 3.1.1, where a broker acknowledges even denied messages). QoS 2: the PUBREC reason
    /// code (the PUBREL/PUBCOMP exchange is completed when it is below 0x80). Panics if the
    /// connection ends first or no acknowledgement arrives.
    pub fn publish(&self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Option<u8> {
        self.try_publish(topic, payload, qos, retain)
            .unwrap_or_else(|error| panic!("publish to {topic:?} (QoS {qos}) failed: {error:?}"))
    }

    /// Like [`publish`](Self::publish), but reports a closed connection or a missing
    /// acknowledgement instead of panicking.
    pub fn try_publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        retain: bool,
    ) -> Result<Option<u8>, ClientError> {
        if qos == 0 {
            self.send(&encode_publish(self.protocol, topic, payload, 0, retain, None))?;
            return Ok(None);
        }
        let id = self.packet_ids.next();
        self.send(&encode_publish(self.protocol, topic, payload, qos, retain, Some(id)))?;
        if qos == 1 {
            return match self
                .wait_ack(|p| matches!(p, Packet::Puback { packet_id, .. } if *packet_id == id))?
            {
                Packet::Puback { code, .. } => Ok(Some(code)),
                other => unreachable!("matched PUBACK, got {other:?}"),
            };
        }
        let code = match self
            .wait_ack(|p| matches!(p, Packet::Pubrec { packet_id, .. } if *packet_id == id))?
        {
            Packet::Pubrec { code, .. } => code,
            other => unreachable!("matched PUBREC, got {other:?}"),
        };
        if code < 0x80 {
            self.send(&encode_ack(0x62, id))?;
            self.wait_ack(|p| matches!(p, Packet::Pubcomp { packet_id, .. } if *packet_id == id))?;
        }
        Ok(Some(code))
    }

    /// The next application message, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<Received> {
        lock(&self.messages).recv_timeout(timeout).ok()
    }

    /// The topics of the messages received until none came for `quiet` (`first` for the first
    /// one).
    pub fn topics_until_quiet(&self, first: Duration, quiet: Duration) -> Vec<String> {
        let mut topics = Vec::new();
        while let Some(Received { topic, .. }) =
            self.recv(if topics.is_empty() { first } else { quiet })
        {
            topics.push(topic);
        }
        topics
    }

    /// True if no message arrives within `window` (a message that does arrive is consumed).
    pub fn expect_nothing(&self, window: Duration) -> bool {
        self.recv(window).is_none()
    }

    /// Sends PINGREQ and waits up to `timeout` for a PINGRESP; proves the connection is alive.
    pub fn ping(&self, timeout: Duration) -> bool {
        if self.send(&PINGREQ).is_err() {
            return false;
        }
        self.wait_ack_for(|p| matches!(p, Packet::Pingresp), timeout).is_ok()
    }

    /// Waits up to `timeout` for the broker to end the connection; how it ended, or `None` if
    /// it is still open.
    pub fn wait_disconnected(&self, timeout: Duration) -> Option<DisconnectInfo> {
        let guard = lock(&self.end.end);
        let (guard, _) = self
            .end
            .changed
            .wait_timeout_while(guard, timeout, |end| end.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone()
    }

    /// True until the broker closes the connection or sends DISCONNECT.
    pub fn is_connected(&self) -> bool {
        lock(&self.end.end).is_none()
    }

    /// Sends DISCONNECT (reason 0, so no will) and waits for the broker to close the socket.
    pub fn disconnect(self) {
        if lock(&self.outgoing).send(&DISCONNECT) {
            let _ = self.wait_disconnected(CLOSE_TIMEOUT);
        }
    }

    /// MQTT 5: sends DISCONNECT with `reason` (e.g. [`reason::DISCONNECT_WITH_WILL`]) and waits
    /// for the broker to close the socket.
    pub fn disconnect_with_reason(self, reason: u8) {
        assert!(self.protocol.is_v5(), "DISCONNECT reason codes need MQTT 5");
        if lock(&self.outgoing).send(&frame(0xE0, &[reason])) {
            let _ = self.wait_disconnected(CLOSE_TIMEOUT);
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<(), ClientError> {
        if lock(&self.outgoing).send(bytes) {
            Ok(())
        } else {
            Err(ClientError::Closed(self.wait_disconnected(Duration::from_secs(1))))
        }
    }

    fn wait_ack(&self, accept: impl Fn(&Packet) -> bool) -> Result<Packet, ClientError> {
        self.wait_ack_for(accept, ACK_TIMEOUT)
    }

    /// Waits for the acknowledgement `accept` recognises, dropping others (late answers to
    /// earlier requests).
    fn wait_ack_for(
        &self,
        accept: impl Fn(&Packet) -> bool,
        timeout: Duration,
    ) -> Result<Packet, ClientError> {
        let acks = lock(&self.acks);
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match acks.recv_timeout(left) {
                Ok(packet) if accept(&packet) => return Ok(packet),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(ClientError::Timeout),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ClientError::Closed(lock(&self.end.end).clone()));
                }
            }
        }
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        let _ = lock(&self.outgoing).stream.shutdown(Shutdown::Both);
        if let Some(thread) = self.reader.take() {
            let _ = thread.join();
        }
    }
}

/// The [`MqttClient`] reader thread: answers the broker, forwards messages and acknowledgements,
/// records how the connection ended.
fn reader_loop(
    mut reader: PacketReader,
    outgoing: &Mutex<Outgoing>,
    end: &EndState,
    messages: &Sender<Received>,
    acks: &Sender<Packet>,
    keep_alive: Duration,
) {
    let info = loop {
        match reader.read(Instant::now() + POLL_INTERVAL) {
            RawRead::Timeout => {
                let mut out = lock(outgoing);
                if !keep_alive.is_zero() && out.last_send.elapsed() >= keep_alive / 2 {
                    out.send(&PINGREQ);
                }
            }
            RawRead::Packet(Packet::Publish(message)) => {
                match (message.qos, message.packet_id) {
                    (1, Some(id)) => {
                        lock(outgoing).send(&encode_ack(0x40, id));
                    }
                    (2, Some(id)) => {
                        lock(outgoing).send(&encode_ack(0x50, id));
                    }
                    _ => {}
                }
                let _ = messages.send(message);
            }
            RawRead::Packet(Packet::Pubrel { packet_id, .. }) => {
                lock(outgoing).send(&encode_ack(0x70, packet_id));
            }
            RawRead::Packet(Packet::Disconnect { code, properties }) => {
                break DisconnectInfo { reason_code: Some(code), properties, malformed: None };
            }
            RawRead::Packet(packet) => {
                let _ = acks.send(packet);
            }
            RawRead::Closed => {
                break DisconnectInfo {
                    reason_code: None,
                    properties: Properties::new(),
                    malformed: None,
                };
            }
            RawRead::Malformed(error) => {
                break DisconnectInfo {
                    reason_code: None,
                    properties: Properties::new(),
                    malformed: Some(error),
                };
            }
        }
    };
    *lock(&end.end) = Some(info);
    end.changed.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Raw sessions
// ---------------------------------------------------------------------------------------------

/// What the broker answered to a raw CONNECT or AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOutcome {
    /// CONNACK.
    Connack {
        /// Return code (3.1.1) or reason code (5).
        code: u8,
        /// MQTT 5 properties.
        properties: Properties,
    },
    /// AUTH (MQTT 5): 0x18 continue authentication, or 0x00 success after re-authentication.
    Auth {
        /// Reason code.
        code: u8,
        /// Properties (Authentication Method, Authentication Data, Reason String).
        properties: Properties,
    },
    /// DISCONNECT (MQTT 5).
    Disconnect {
        /// Reason code.
        code: u8,
        /// Properties.
        properties: Properties,
    },
    /// The socket was closed without a packet.
    Closed,
    /// No answer within the deadline.
    Timeout,
    /// Bytes that are not a valid packet.
    Malformed(String),
    /// A valid packet that is no answer to the request.
    Unexpected(Packet),
}

impl RawOutcome {
    /// The reason/return code of a CONNACK, AUTH or DISCONNECT.
    pub fn code(&self) -> Option<u8> {
        match self {
            Self::Connack { code, .. }
            | Self::Auth { code, .. }
            | Self::Disconnect { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The properties of a CONNACK, AUTH or DISCONNECT.
    pub fn properties(&self) -> Option<&Properties> {
        match self {
            Self::Connack { properties, .. }
            | Self::Auth { properties, .. }
            | Self::Disconnect { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The Authentication Data property, if any.
    pub fn auth_data(&self) -> Option<&[u8]> {
        self.properties()?.binary(property::AUTHENTICATION_DATA)
    }

    /// The Reason String property, if any.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties()?.reason_string()
    }

    /// True for a CONNACK with code 0.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Connack { code: 0, .. })
    }

    fn from_packet(packet: Packet) -> Self {
        match packet {
            Packet::Connack { code, properties, .. } => Self::Connack { code, properties },
            Packet::Auth { code, properties } => Self::Auth { code, properties },
            Packet::Disconnect { code, properties } => Self::Disconnect { code, properties },
            other => Self::Unexpected(other),
        }
    }
}

/// One step of reading on a [`RawSession`].
enum Step {
    Packet(Packet),
    Handled,
    End(RawOutcome),
}

/// A single-threaded MQTT connection driven packet by packet, for enhanced authentication,
/// re-authentication and malformed input. Incoming PUBLISH packets are acknowledged and queued
/// while waiting for other answers. Dropping it closes the socket without DISCONNECT.
#[derive(Debug)]
pub struct RawSession {
    stream: TcpStream,
    reader: PacketReader,
    protocol: Protocol,
    connect_outcome: RawOutcome,
    queued: VecDeque<Received>,
    packet_ids: PacketIds,
    ended: Option<RawOutcome>,
}

impl RawSession {
    /// Connects to `127.0.0.1:port`, sends `connect` and waits up to [`ACK_TIMEOUT`] for the
    /// first answer (see [`outcome`](Self::outcome)). Panics only if TCP cannot connect.
    pub fn connect(port: u16, connect: &RawConnect) -> RawSession {
        let stream = connect_tcp(port);
        let reader =
            PacketReader::new(stream.try_clone().expect("TCP stream clones"), connect.protocol);
        let mut session = RawSession {
            stream,
            reader,
            protocol: connect.protocol,
            connect_outcome: RawOutcome::Closed,
            queued: VecDeque::new(),
            packet_ids: PacketIds::default(),
            ended: None,
        };
        session.connect_outcome = if session.send_raw(&connect.encode()) {
            session.await_answer(ACK_TIMEOUT, |p| {
                matches!(p, Packet::Connack { .. } | Packet::Auth { .. })
            })
        } else {
            RawOutcome::Closed
        };
        session
    }

    /// The broker's answer to the CONNECT: CONNACK, AUTH (continue), DISCONNECT, Closed, ...
    pub fn outcome(&self) -> &RawOutcome {
        &self.connect_outcome
    }

    /// The DISCONNECT or close that ended the session, once seen.
    pub fn ended(&self) -> Option<&RawOutcome> {
        self.ended.as_ref()
    }

    /// MQTT 5: sends AUTH 0x18 (continue authentication) during the CONNECT exchange and waits
    /// for the broker's next AUTH, CONNACK or DISCONNECT.
    pub fn continue_auth(&mut self, method: &str, data: &[u8]) -> RawOutcome {
        self.auth(reason::CONTINUE_AUTHENTICATION, method, data)
    }

    /// MQTT 5: sends AUTH 0x19 (re-authenticate) on an established connection and waits for the
    /// broker's AUTH (0x00 success or 0x18 continue), DISCONNECT or close.
    pub fn reauth(&mut self, method: &str, data: &[u8]) -> RawOutcome {
        self.auth(reason::RE_AUTHENTICATE, method, data)
    }

    fn auth(&mut self, code: u8, method: &str, data: &[u8]) -> RawOutcome {
        assert!(self.protocol.is_v5(), "AUTH needs MQTT 5");
        if !self.send_raw(&encode_auth(code, method, data)) {
            return self.ended.clone().unwrap_or(RawOutcome::Closed);
        }
        self.await_answer(ACK_TIMEOUT, |p| {
            matches!(p, Packet::Auth { .. } | Packet::Connack { .. })
        })
    }

    /// Publishes at QoS 1; the PUBACK reason code (0 on 3.1.1), or `None` if the connection
    /// ended or no PUBACK came (see [`ended`](Self::ended)).
    pub fn publish_qos1(&mut self, topic: &str, payload: &[u8]) -> Option<u8> {
        let id = self.packet_ids.next();
        if !self.send_raw(&encode_publish(self.protocol, topic, payload, 1, false, Some(id))) {
            return None;
        }
        match self.await_packet(
            ACK_TIMEOUT,
            |p| matches!(p, Packet::Puback { packet_id, .. } if *packet_id == id),
        ) {
            Ok(Packet::Puback { code, .. }) => Some(code),
            _ => None,
        }
    }

    /// Publishes at QoS 0; false if the socket is closed.
    pub fn publish_qos0(&mut self, topic: &str, payload: &[u8]) -> bool {
        self.send_raw(&encode_publish(self.protocol, topic, payload, 0, false, None))
    }

    /// Subscribes to one filter; the SUBACK code, or `None` if the connection ended or no
    /// SUBACK came.
    pub fn subscribe(&mut self, filter: &str, qos: u8) -> Option<u8> {
        let id = self.packet_ids.next();
        if !self.send_raw(&encode_subscribe(self.protocol, id, &[(filter, qos)])) {
            return None;
        }
        match self.await_packet(
            ACK_TIMEOUT,
            |p| matches!(p, Packet::Suback { packet_id, .. } if *packet_id == id),
        ) {
            Ok(Packet::Suback { codes, .. }) => codes.first().copied(),
            _ => None,
        }
    }

    /// The next application message (queued or arriving within `timeout`).
    pub fn recv_publish(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.queued.pop_front() {
                return Some(message);
            }
            match self.step(deadline) {
                Step::End(_) => return None,
                Step::Handled | Step::Packet(_) => {}
            }
        }
    }

    /// Sends PINGREQ and waits up to `timeout` for PINGRESP.
    pub fn ping(&mut self, timeout: Duration) -> bool {
        self.send_raw(&PINGREQ)
            && self.await_packet(timeout, |p| matches!(p, Packet::Pingresp)).is_ok()
    }

    /// Waits up to `timeout` for the broker to end the connection: the DISCONNECT or
    /// [`RawOutcome::Closed`], or `None` if it stays open.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<RawOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.step(deadline) {
                Step::End(RawOutcome::Timeout) => return None,
                Step::End(outcome) => return Some(outcome),
                Step::Handled | Step::Packet(_) => {}
            }
        }
    }

    /// Writes bytes as they are; false if the socket is closed.
    pub fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).and_then(|()| self.stream.flush()).is_ok()
    }

    /// Reads the next packet as it is, without answering or queueing anything.
    pub fn read_packet(&mut self, timeout: Duration) -> RawRead {
        self.reader.read(Instant::now() + timeout)
    }

    /// Sends DISCONNECT (reason 0) and closes the socket.
    pub fn disconnect(mut self) {
        self.send_raw(&DISCONNECT);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads one packet, answering and queueing PUBLISH and recording the end of the session.
    fn step(&mut self, deadline: Instant) -> Step {
        if let Some(end) = &self.ended {
            return Step::End(end.clone());
        }
        let outcome = match self.reader.read(deadline) {
            RawRead::Timeout => return Step::End(RawOutcome::Timeout),
            RawRead::Packet(Packet::Publish(message)) => {
                match (message.qos, message.packet_id) {
                    (1, Some(id)) => {
                        self.send_raw(&encode_ack(0x40, id));
                    }
                    (2, Some(id)) => {
                        self.send_raw(&encode_ack(0x50, id));
                    }
                    _ => {}
                }
                self.queued.push_back(message);
                return Step::Handled;
            }
            RawRead::Packet(Packet::Pubrel { packet_id, .. }) => {
                self.send_raw(&encode_ack(0x70, packet_id));
                return Step::Handled;
            }
            RawRead::Packet(Packet::Disconnect { code, properties }) => {
                RawOutcome::Disconnect { code, properties }
            }
            RawRead::Packet(packet) => return Step::Packet(packet),
            RawRead::Closed => RawOutcome::Closed,
            RawRead::Malformed(error) => RawOutcome::Malformed(error),
        };
        self.ended = Some(outcome.clone());
        Step::End(outcome)
    }

    /// Waits for a packet `accept` recognises, dropping others; the end of the session or a
    /// timeout as `Err`.
    fn await_packet(
        &mut self,
        timeout: Duration,
        accept: impl Fn(&Packet) -> bool,
    ) -> Result<Packet, RawOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.step(deadline) {
                Step::Packet(packet) if accept(&packet) => return Ok(packet),
                Step::Packet(_) | Step::Handled => {}
                Step::End(outcome) => return Err(outcome),
            }
        }
    }

    fn await_answer(&mut self, timeout: Duration, accept: impl Fn(&Packet) -> bool) -> RawOutcome {
        match self.await_packet(timeout, accept) {
            Ok(packet) => RawOutcome::from_packet(packet),
            Err(outcome) => outcome,
        }
    }
}

/// MQTT 3.1.1 CONNECT with arbitrary bytes as client id, user name and password (NUL bytes,
/// invalid UTF-8, up to 65535 bytes); the broker's answer. The connection is then dropped.
pub fn raw_connect_v311(
    port: u16,
    client_id: impl AsRef<[u8]>,
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> RawOutcome {
    raw_connect(port, Protocol::V311, client_id, username, password)
}

/// MQTT 5 CONNECT with arbitrary bytes as client id, user name and password; the broker's
/// answer. The connection is then dropped.
pub fn raw_connect_v5(
    port: u16,
    client_id: impl AsRef<[u8]>,
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> RawOutcome {
    raw_connect(port, Protocol::V5, client_id, username, password)
}

fn raw_connect(
    port: u16,
    protocol: Protocol,
    client_id: impl AsRef<[u8]>,
    username: Option<&[u8]>,
    password: Option<&[u8]>,
) -> RawOutcome {
    let mut connect = RawConnect::new(protocol, client_id);
    connect.username = username.map(<[u8]>::to_vec);
    connect.password = password.map(<[u8]>::to_vec);
    RawSession::connect(port, &connect).outcome().clone()
}

/// MQTT 5 CONNECT with Authentication Method `method` and Authentication Data `data` (no user
/// name or password); the open session, whose [`outcome`](RawSession::outcome) is the broker's
/// CONNACK, AUTH or close.
pub fn raw_connect_v5_auth(
    port: u16,
    client_id: impl AsRef<[u8]>,
    method: &str,
    data: &[u8],
) -> RawSession {
    let mut connect = RawConnect::new(Protocol::V5, client_id);
    connect.properties = Properties::new()
        .with(property::AUTHENTICATION_METHOD, PropertyValue::String(method.to_owned()))
        .with(property::AUTHENTICATION_DATA, PropertyValue::Binary(data.to_vec()));
    RawSession::connect(port, &connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips() {
        for value in [0u32, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Cursor::new(&out).varint(), Ok(value), "{value}");
        }
    }

    #[test]
    fn properties_round_trip() {
        let properties = Properties::new()
            .with(property::AUTHENTICATION_METHOD, PropertyValue::String("m".into()))
            .with(property::AUTHENTICATION_DATA, PropertyValue::Binary(vec![0, 1, 2]))
            .with(property::SESSION_EXPIRY_INTERVAL, PropertyValue::U32(7))
            .with(property::RECEIVE_MAXIMUM, PropertyValue::U16(9))
            .with(property::SUBSCRIPTION_IDENTIFIER, PropertyValue::VarInt(300))
            .with(property::USER_PROPERTY, PropertyValue::Pair("k".into(), "v".into()));
        let mut out = Vec::new();
        put_properties(&mut out, &properties);
        assert_eq!(Cursor::new(&out).properties(), Ok(properties));
    }

    #[test]
    fn decodes_v5_acks_with_and_without_reason() {
        let short = decode(Protocol::V5, 0x40, &[0, 7]);
        assert_eq!(
            short,
            Ok(Packet::Puback { packet_id: 7, code: 0, properties: Properties::new() })
        );
        let denied = decode(Protocol::V5, 0x40, &[0, 7, 0x87]);
        assert_eq!(
            denied,
            Ok(Packet::Puback { packet_id: 7, code: 0x87, properties: Properties::new() })
        );
        let suback = decode(Protocol::V5, 0x90, &[0, 1, 0, 0x01, 0x87]);
        assert_eq!(
            suback,
            Ok(Packet::Suback {
                packet_id: 1,
                codes: vec![1, 0x87],
                properties: Properties::new()
            })
        );
    }

    #[test]
    fn auth_packets_round_trip() {
        let bytes = encode_auth(reason::RE_AUTHENTICATE, "m", &[0xAB, 0xCD]);
        assert_eq!(bytes, [0xF0, 11, 0x19, 9, 0x15, 0, 1, b'm', 0x16, 0, 2, 0xAB, 0xCD]);
        let Ok(Packet::Auth { code, properties }) = decode(Protocol::V5, bytes[0], &bytes[2..])
        else {
            panic!("AUTH does not decode");
        };
        assert_eq!(code, reason::RE_AUTHENTICATE);
        assert_eq!(properties.string(property::AUTHENTICATION_METHOD), Some("m"));
        assert_eq!(properties.binary(property::AUTHENTICATION_DATA), Some(&[0xAB, 0xCD][..]));
        // DISCONNECT and AUTH may omit everything after the fixed header.
        assert_eq!(
            decode(Protocol::V5, 0xE0, &[]),
            Ok(Packet::Disconnect { code: 0, properties: Properties::new() })
        );
        let with_reason = [0x87, 5, 0x1F, 0, 2, b'n', b'o'];
        let Ok(Packet::Disconnect { code, properties }) = decode(Protocol::V5, 0xE0, &with_reason)
        else {
            panic!("DISCONNECT does not decode");
        };
        assert_eq!((code, properties.reason_string()), (0x87, Some("no")));
    }

    #[test]
    fn reads_frames_split_across_reads_and_rejects_long_lengths() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = connect_tcp(port);
        let (mut server, _) = listener.accept().expect("accept");
        let mut reader = PacketReader::new(client, Protocol::V311);
        let soon = || Instant::now() + Duration::from_millis(50);
        server.write_all(&[0x20, 0x02, 0x00]).expect("write");
        assert_eq!(reader.read(soon()), RawRead::Timeout);
        server.write_all(&[0x05, 0xD0]).expect("write");
        assert_eq!(
            reader.read(soon()),
            RawRead::Packet(Packet::Connack {
                session_present: false,
                code: 5,
                properties: Properties::new()
            })
        );
        server.write_all(&[0x00]).expect("write");
        assert_eq!(reader.read(soon()), RawRead::Packet(Packet::Pingresp));
        server.write_all(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).expect("write");
        assert!(matches!(reader.read(soon()), RawRead::Malformed(_)));
        drop(server);
        let mut reader = PacketReader::new(reader.stream, Protocol::V311);
        assert_eq!(reader.read(Instant::now() + Duration::from_secs(5)), RawRead::Closed);
    }

    #[test]
    fn connect_encoding_matches_the_spec_example() {
        let mut connect = RawConnect::new(Protocol::V311, "c");
        connect.keep_alive_secs = 10;
        assert_eq!(
            connect.encode(),
            [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 10, 0, 1, b'c']
        );
    }
}
