//! Load generator for `bench/ratio.sh`: QoS 0, one publisher → one subscriber, over plain TCP
//! with MQTT 3.1.1, against any broker. Prints one line: `<received> <seconds> <msgs/s>`.
//!
//! ```text
//! qos0_pump <port> <username> <password> [messages] [payload bytes]
//! ```
//!
//! The subscriber subscribes to `bench/#` first; the publisher then writes `messages` PUBLISH
//! packets to `bench/load` as fast as TCP takes them. The rate is the number of messages the
//! subscriber received divided by the time from the first to the last one (a broker may drop
//! QoS 0 messages under load; those simply do not count).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn string(value: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn connect(port: u16, client_id: &str, username: &str, password: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("broker reachable");
    stream.set_nodelay(true).unwrap();
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.extend_from_slice(&[4, 0xC2, 0, 60]);
    string(client_id.as_bytes(), &mut body);
    string(username.as_bytes(), &mut body);
    string(password.as_bytes(), &mut body);
    stream.write_all(&packet(0x10, &body)).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack[3], 0, "CONNACK refused with {}", connack[3]);
    stream
}

/// Reads one packet: (first byte, body).
fn read_packet(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).ok()?;
    let (mut length, mut shift) = (0usize, 0);
    loop {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).ok()?;
        length |= usize::from(byte[0] & 0x7F) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: qos0_pump <port> <username> <password> [messages] [payload bytes]");
        std::process::exit(2);
    }
    let port: u16 = args[1].parse().expect("port");
    let (username, password) = (&args[2], &args[3]);
    let messages: usize = args.get(4).map_or(100_000, |n| n.parse().expect("messages"));
    let payload = vec![b'x'; args.get(5).map_or(64, |n| n.parse().expect("payload bytes"))];

    let mut subscriber = connect(port, "bench-sub", username, password);
    let mut body = vec![0, 1];
    string(b"bench/#", &mut body);
    body.push(0);
    subscriber.write_all(&packet(0x82, &body)).unwrap();
    let (first, suback) = read_packet(&mut subscriber).expect("SUBACK");
    assert_eq!((first, suback[2]), (0x90, 0), "subscription refused");
    subscriber.set_read_timeout(Some(Duration::from_secs(3))).unwrap();

    let publisher = connect(port, "bench-pub", username, password);
    let mut publish_body = Vec::new();
    string(b"bench/load", &mut publish_body);
    publish_body.extend_from_slice(&payload);
    let publish = packet(0x30, &publish_body);
    let writer = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(64 * 1024, &publisher);
        for _ in 0..messages {
            out.write_all(&publish).unwrap();
        }
        out.flush().unwrap();
        drop(out);
        publisher
    });

    let mut received = 0usize;
    let mut first_at = None;
    let mut last_at = Instant::now();
    while received < messages {
        match read_packet(&mut subscriber) {
            Some((first, _)) if first & 0xF0 == 0x30 => {
                received += 1;
                last_at = Instant::now();
                first_at.get_or_insert(last_at);
            }
            Some(_) => {}
            None => break,
        }
    }
    let _publisher = writer.join().unwrap();
    let seconds = first_at.map_or(0.0, |t| last_at.duration_since(t).as_secs_f64());
    let rate = if seconds > 0.0 { received as f64 / seconds } else { 0.0 };
    println!("{received} {seconds:.3} {rate:.0}");
}
