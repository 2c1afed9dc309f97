//! What a plugin's threads cost Mosquitto's own thread, measured on the operations of its
//! message loop: a zeroed 64-byte allocation freed again (Mosquitto `calloc`s its packets and
//! messages) and a 64-byte `write` + `read` over a socket pair. Three phases in this process,
//! which starts single-threaded: before any thread was started, after one was started and
//! joined (glibc stays in its multithreaded mode for good: heap locks, cancellation-point
//! bookkeeping), and while a second thread sleeps (the kernel also reference-counts file
//! descriptors shared with it).

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Measurement repetitions per phase; the fastest counts, as noise only ever adds time.
const REPETITIONS: usize = 5;

/// Nanoseconds per zeroed allocation and its release (the fastest repetition).
fn allocation_ns(count: u32) -> f64 {
    fastest_ns(count, || {
        for _ in 0..count {
            black_box(vec![0u8; 64]);
        }
    })
}

/// Nanoseconds per 64-byte write and read over a Unix socket pair (the fastest repetition).
fn syscall_pair_ns(count: u32) -> f64 {
    let (mut left, mut right) = UnixStream::pair().unwrap();
    let mut buffer = [0u8; 64];
    fastest_ns(count, || {
        for _ in 0..count {
            left.write_all(&buffer).unwrap();
            right.read_exact(&mut buffer).unwrap();
        }
    })
}

fn fastest_ns(count: u32, mut body: impl FnMut()) -> f64 {
    (0..REPETITIONS)
        .map(|_| {
            let started = Instant::now();
            body();
            started.elapsed()
        })
        .min()
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1e9
        / f64::from(count)
}

fn threads_of_this_process() -> u64 {
    super::thread_count(std::process::id())
}

pub(super) fn run(allocations: u32, syscall_pairs: u32) {
    assert_eq!(threads_of_this_process(), 1, "must start single-threaded");
    // Unmeasured: the first allocations also grow the heap.
    allocation_ns(allocations);
    let mut rows = Vec::new();
    let mut measure = |phase: &str| {
        rows.push((phase.to_owned(), allocation_ns(allocations), syscall_pair_ns(syscall_pairs)));
    };
    measure("no thread ever started");
    std::thread::spawn(|| {}).join().unwrap();
    assert_eq!(threads_of_this_process(), 1);
    measure("after a thread was started and joined");
    let (wake, parked) = std::sync::mpsc::channel::<()>();
    let sleeper = std::thread::spawn(move || parked.recv().ok());
    measure("while a second thread sleeps");
    drop(wake);
    sleeper.join().unwrap();

    println!(
        "| broker-thread operation cost | calloc + free (64 B) | write + read (64 B, socket pair) |"
    );
    println!("|---|---|---|");
    let (_, base_allocation, base_syscalls) = rows[0].clone();
    for (phase, allocation, syscalls) in &rows {
        println!(
            "| {phase} | {allocation:.1} ns ({:+.1} ns) | {syscalls:.0} ns ({:+.0} ns) |",
            allocation - base_allocation,
            syscalls - base_syscalls
        );
    }
}
