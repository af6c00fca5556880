//! The floor under every topology figure: how fast a 100-byte item crosses from one
//! thread to another through a bounded queue, batched (as the engine does) and not; and
//! how still the machine holds a running thread, which bounds every latency tail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use squall_engine::queue::BatchQueue;

#[derive(Clone, Copy)]
struct Item([u8; 100]);

/// Items per second for each channel.
#[derive(Serialize, Deserialize)]
pub struct Floor {
    pub batch_queue: f64,
    pub crossbeam: f64,
    pub std_sync: f64,
    pub tokio_mpsc: f64,
    pub stalls: Stalls,
}

/// What the machine does to a thread that wants to run: on a VM, the host can take the
/// core away for a while, and a tree in flight waits as long.
#[derive(Serialize, Deserialize, Default)]
pub struct Stalls {
    /// How long a thread read the clock in a loop.
    pub window_ms: u64,
    /// Gaps of more than `GAP_US` between two reads: the thread did not run.
    pub gaps: u64,
    pub gap_total_us: u64,
    pub gap_max_us: u64,
    /// A parked thread unparked by another: how long until it runs, over `WAKEUPS`.
    pub wake_p50_us: u64,
    pub wake_p99_us: u64,
}

/// A gap in a busy loop longer than this is a stall.
pub const GAP_US: u64 = 50;
/// Wake-ups timed.
pub const WAKEUPS: usize = 2_000;

pub fn measure(window: Duration) -> Floor {
    Floor {
        batch_queue: batch_queue(window),
        crossbeam: crossbeam(window),
        std_sync: std_sync(window),
        tokio_mpsc: tokio_mpsc(window),
        stalls: stalls(window),
    }
}

fn stalls(window: Duration) -> Stalls {
    let mut s = Stalls {
        window_ms: window.as_millis() as u64,
        ..Stalls::default()
    };
    let start = Instant::now();
    let mut last = start;
    while last.duration_since(start) < window {
        let now = Instant::now();
        let gap = now.duration_since(last).as_micros() as u64;
        if gap > GAP_US {
            s.gaps += 1;
            s.gap_total_us += gap;
            s.gap_max_us = s.gap_max_us.max(gap);
        }
        last = now;
    }
    let mut waits = wakeups();
    waits.sort_unstable();
    let at = |q: f64| {
        waits
            .get(((waits.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    s.wake_p50_us = at(0.5);
    s.wake_p99_us = at(0.99);
    s
}

/// Unpark → running, in µs, for `WAKEUPS` wake-ups of a parked thread, 200 µs apart.
fn wakeups() -> Vec<u64> {
    let epoch = Instant::now();
    let stamp = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (st, dn) = (Arc::clone(&stamp), Arc::clone(&done));
    let sleeper = std::thread::spawn(move || {
        let mut waits = Vec::with_capacity(WAKEUPS);
        while !dn.load(Ordering::Acquire) {
            std::thread::park();
            let sent = st.swap(0, Ordering::AcqRel);
            if sent > 0 {
                waits.push((epoch.elapsed().as_nanos() as u64).saturating_sub(sent) / 1_000);
            }
        }
        waits
    });
    for _ in 0..WAKEUPS {
        std::thread::sleep(Duration::from_micros(200));
        // Stamped just before the unpark; 0 means "no wake-up pending".
        stamp.store((epoch.elapsed().as_nanos() as u64).max(1), Ordering::Release);
        sleeper.thread().unpark();
    }
    std::thread::sleep(Duration::from_millis(5));
    done.store(true, Ordering::Release);
    sleeper.thread().unpark();
    sleeper.join().unwrap_or_default()
}

fn batch_queue(window: Duration) -> f64 {
    let q = Arc::new(BatchQueue::<Item>::new(16_384));
    let stop = Arc::new(AtomicBool::new(false));
    let (qc, sc) = (Arc::clone(&q), Arc::clone(&stop));
    let consumer = std::thread::spawn(move || {
        qc.set_consumer(std::thread::current());
        let mut n = 0u64;
        let mut sum = 0u64;
        while !sc.load(Ordering::Relaxed) {
            match qc.try_pop() {
                Some(b) => {
                    n += b.len() as u64;
                    sum += b.iter().map(|i| u64::from(i.0[7])).sum::<u64>();
                    qc.recycle(b);
                }
                None => qc.park_consumer(Duration::from_millis(1)),
            }
        }
        (n, sum)
    });
    let start = Instant::now();
    let mut batch = Vec::with_capacity(256);
    let item = Item([7; 100]);
    while start.elapsed() < window {
        for _ in 0..256 {
            batch.push(item);
        }
        while !q.try_push(&mut batch) {
            q.wait_for_room();
            if !q.has_room_for(batch.len()) {
                std::thread::park_timeout(Duration::from_micros(100));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    let (n, _) = consumer.join().unwrap_or((0, 0));
    n as f64 / elapsed.as_secs_f64()
}

fn crossbeam(window: Duration) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<Item>(1024);
    unbatched(window, move |i| tx.send(i).is_ok(), move || rx.recv().ok())
}

fn std_sync(window: Duration) -> f64 {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Item>(1024);
    unbatched(window, move |i| tx.send(i).is_ok(), move || rx.recv().ok())
}

/// Items per second through a blocking channel, one item per send, for `window`.
/// Dropping `send` (with the channel's sender) ends the consumer.
fn unbatched(
    window: Duration,
    mut send: impl FnMut(Item) -> bool,
    mut recv: impl FnMut() -> Option<Item> + Send + 'static,
) -> f64 {
    let consumer = std::thread::spawn(move || {
        let mut n = 0u64;
        while let Some(i) = recv() {
            n += u64::from(i.0[3] == 7);
        }
        n
    });
    let start = Instant::now();
    let item = Item([7; 100]);
    'outer: while start.elapsed() < window {
        for _ in 0..1024 {
            if !send(item) {
                break 'outer;
            }
        }
    }
    drop(send);
    let n = consumer.join().unwrap_or(0);
    n as f64 / start.elapsed().as_secs_f64()
}

/// A tokio bounded mpsc channel between two single-threaded runtimes on two threads, one
/// item per send, as an async data plane would use it.
fn tokio_mpsc(window: Duration) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(1024);
    let consumer = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
            return 0;
        };
        rt.block_on(async move {
            let mut n = 0u64;
            while let Some(i) = rx.recv().await {
                n += u64::from(i.0[3] == 7);
            }
            n
        })
    });
    let start = Instant::now();
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() {
        rt.block_on(async {
            let item = Item([7; 100]);
            'outer: while start.elapsed() < window {
                for _ in 0..1024 {
                    if tx.send(item).await.is_err() {
                        break 'outer;
                    }
                }
            }
        });
    }
    drop(tx);
    let n = consumer.join().unwrap_or(0);
    n as f64 / start.elapsed().as_secs_f64()
}
