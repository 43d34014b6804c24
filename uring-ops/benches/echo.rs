//! Echo servers side by side: the io_uring `echo` example against a tokio echo server, each on
//! one thread, under the same load (clients doing ping-pong with messages of a given size).
//!
//! ```sh
//! cargo bench -p uring-ops --bench echo -- [--clients N] [--secs S] [--rounds R] [--sizes 64,16384] [--only uring|tokio] [--load-threads N]
//! ```
//!
//! For each message size and round, each server in turn: the clients (one tokio thread, all
//! connections on it) connect, warm up for half a second, then for `--secs` the bench counts
//! the messages echoed and reads the server thread's CPU clock (`pthread_getcpuclockid`).
//! Reported: messages per second, the server thread's CPU use, and its CPU time per message
//! (median of the rounds).

#[path = "../examples/echo.rs"]
#[allow(dead_code)]
mod echo;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Opts {
    clients: usize,
    secs: f64,
    rounds: usize,
    sizes: Vec<usize>,
    /// Which servers: 0 the io_uring one, 1 tokio.
    servers: Vec<usize>,
    /// Threads of the load generator's runtime.
    load_threads: usize,
}

fn parse() -> Result<Opts, lexopt::Error> {
    use lexopt::prelude::*;
    let mut o = Opts {
        clients: 100,
        secs: 5.0,
        rounds: 3,
        sizes: vec![64, 16384],
        servers: vec![0, 1],
        load_threads: 1,
    };
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next()? {
        match arg {
            Long("clients") => o.clients = p.value()?.parse()?,
            Long("secs") => o.secs = p.value()?.parse()?,
            Long("rounds") => o.rounds = p.value()?.parse()?,
            Long("load-threads") => o.load_threads = p.value()?.parse()?,
            Long("sizes") => {
                o.sizes = p
                    .value()?
                    .string()?
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("--sizes: bad size {s}")))
                    .collect::<Result<_, _>>()?
            }
            Long("only") => {
                o.servers = match p.value()?.string()?.as_str() {
                    "uring" => vec![0],
                    "tokio" => vec![1],
                    other => return Err(format!("--only {other}: expected uring or tokio").into()),
                }
            }
            // `cargo bench` passes this to every bench.
            Long("bench") => {}
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(o)
}

/// A server running on its own thread.
struct Server {
    addr: SocketAddr,
    thread: JoinHandle<()>,
    stop: Box<dyn FnOnce()>,
}

impl Server {
    /// The CPU time the server thread has used so far.
    fn cpu(&self) -> Duration {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the thread is alive (joined only in `finish`); `clock` is written.
        let r = unsafe { libc::pthread_getcpuclockid(self.thread.as_pthread_t(), &mut clock) };
        assert_eq!(r, 0);
        // SAFETY: all-zero is a valid timespec, which `clock_gettime` fills.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::clock_gettime(clock, &mut ts) }, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    fn finish(self) {
        (self.stop)();
        self.thread.join().unwrap();
    }
}

/// A thread named `name` (profilers show it by name).
fn named(name: &str, f: impl FnOnce() + std::marker::Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .unwrap()
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// The `echo` example's server.
fn uring_server() -> Server {
    let (l, addr) = listener();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = named("uring-echo", move || {
        let args = echo::Args::default();
        echo::serve(l, &args, &|_| flag.load(Ordering::Relaxed)).unwrap();
    });
    Server {
        addr,
        thread,
        stop: Box::new(move || {
            stop.store(true, Ordering::Relaxed);
            // A connection wakes the loop to see the flag.
            let _ = std::net::TcpStream::connect(addr);
        }),
    }
}

/// The usual tokio echo server: a task per connection, read into a 16 KiB buffer, write it
/// back; one thread (a current-thread runtime), like the io_uring one.
fn tokio_server() -> Server {
    let (l, addr) = listener();
    l.set_nonblocking(true).unwrap();
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let thread = named("tokio-echo", move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                tokio::select! {
                    r = l.accept() => {
                        let (mut s, _) = r.unwrap();
                        tokio::spawn(async move {
                            let mut buf = vec![0u8; 16384];
                            loop {
                                let n = match s.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    _ = &mut rx => break,
                }
            }
        });
    });
    Server {
        addr,
        thread,
        stop: Box::new(move || {
            let _ = tx.send(());
        }),
    }
}

/// The load: `clients` connections on a tokio runtime of `threads` threads, each sending
/// `size` bytes and reading them back, again and again, until told to stop.
fn load(
    addr: SocketAddr,
    o: &Opts,
    size: usize,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (clients, threads) = (o.clients, o.load_threads);
    named("echo-load", move || {
        let rt = if threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        }
        .enable_io()
        .build()
        .unwrap();
        rt.block_on(async move {
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (count, stop) = (count.clone(), stop.clone());
                tasks.push(tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let msg: Vec<u8> = (0..size).map(|i| (i + c) as u8).collect();
                    let mut back = vec![0u8; size];
                    while !stop.load(Ordering::Relaxed) {
                        s.write_all(&msg).await.unwrap();
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg, "the echo differs");
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
    })
}

/// One measurement: messages per second, server CPU share, server CPU µs per message.
fn measure(server: Server, o: &Opts, size: usize) -> (f64, f64, f64) {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let l = load(server.addr, o, size, count.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let (c0, t0, cpu0) = (count.load(Ordering::Relaxed), Instant::now(), server.cpu());
    std::thread::sleep(Duration::from_secs_f64(o.secs));
    let (c1, t1, cpu1) = (count.load(Ordering::Relaxed), Instant::now(), server.cpu());
    stop.store(true, Ordering::Relaxed);
    l.join().unwrap();
    server.finish();
    let (msgs, wall, cpu) = (
        (c1 - c0) as f64,
        (t1 - t0).as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64(),
    );
    (msgs / wall, cpu / wall, cpu / msgs * 1e6)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("echo bench: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "{} clients on {} load thread(s), ping-pong, {} s per measurement, median of {} rounds",
        o.clients, o.load_threads, o.secs, o.rounds
    );
    println!("| message | server | messages/s | server CPU | CPU µs/message |");
    println!("|---|---|---|---|---|");
    for &size in &o.sizes {
        let mut r: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for round in 0..o.rounds {
            // Alternate which goes first, so that drift in the machine's load hits both.
            let mut order = o.servers.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for which in order {
                let server = if which == 0 {
                    uring_server()
                } else {
                    tokio_server()
                };
                let m = measure(server, &o, size);
                eprintln!(
                    "round {round}, {size} B, {}: {:.0} messages/s, CPU {:.0}%, {:.2} µs/message",
                    ["io_uring echo", "tokio"][which],
                    m.0,
                    m.1 * 100.0,
                    m.2
                );
                r[which].push(m);
            }
        }
        for (which, name) in [(0, "io_uring echo"), (1, "tokio")] {
            if r[which].is_empty() {
                continue;
            }
            let mut rate: Vec<f64> = r[which].iter().map(|x| x.0).collect();
            let mut share: Vec<f64> = r[which].iter().map(|x| x.1).collect();
            let mut per: Vec<f64> = r[which].iter().map(|x| x.2).collect();
            println!(
                "| {size} B | {name} | {:.0} | {:.0}% | {:.2} |",
                median(&mut rate),
                median(&mut share) * 100.0,
                median(&mut per)
            );
        }
    }
}
