//! A TCP echo server on one thread: a multishot accept, one provided-buffer ring shared by all
//! connections, a multishot receive per connection, and each received buffer sent back as is.
//!
//! ```sh
//! cargo run --release -p uring-ops --example echo -- [--addr ADDR] [--buffers N] [--buf-size BYTES] [--conns N]
//! cargo run --release -p uring-ops --example echo -- --help
//! ```
//!
//! It prints `listening on ADDR` (the port the kernel picked, with the default port 0) and
//! serves until killed, or until `--conns` connections have come and gone.
//!
//! The data path copies nothing in user space: the kernel receives into a buffer of the ring
//! ([`BufRing`]), the completion hands it over as a [`ProvidedBuf`], a [`Send`] takes that very
//! buffer, and dropping it after the send puts it back into the ring. Each connection sends one
//! buffer at a time, in order; the others wait in its queue. When the ring runs dry the
//! receive ends with `ENOBUFS` and is pushed again once buffers are back.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;
use uring_ops::core::Builder;
use uring_ops::ops::{Accept, RecvProvided, Send};
use uring_ops::{BufRing, Completion, Fd, Multishot, ProvidedBuf, Ticket, Uring};

/// What the command line asks for.
#[derive(Debug)]
pub struct Args {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Buffers in the ring.
    pub buffers: u32,
    /// Bytes per buffer.
    pub buf_size: u32,
    /// Stop after this many connections have closed (0: never).
    pub conns: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            buffers: 1024,
            buf_size: 16384,
            conns: 0,
        }
    }
}

const USAGE: &str = "usage: echo [--addr ADDR] [--buffers N] [--buf-size BYTES] [--conns N]";

const HELP: &str = "\
A TCP echo server on io_uring: multishot accept, a provided-buffer ring, a multishot receive
per connection, and every received buffer sent back without a copy. Prints the address it
listens on, then serves until killed or until --conns connections have closed.

options:
  --addr ADDR          address to listen on (default 127.0.0.1:0: a port the kernel picks)
  --buffers N          buffers in the ring, 1 to 32768 (default 1024)
  --buf-size BYTES     bytes per buffer, 1 to 1048576 (default 16384)
  --conns N            exit after N connections have closed (default 0: never)
  -h, --help           print this help";

enum Command {
    Serve(Args),
    Help,
}

fn parse_args() -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => {
                let v = parser.value()?;
                args.addr = v.to_string_lossy().parse().map_err(|_| {
                    format!(
                        "--addr {}: expected an address such as 127.0.0.1:7000",
                        v.to_string_lossy()
                    )
                })?;
            }
            Long("buffers") => args.buffers = number("--buffers", parser.value()?, 1..=32768)?,
            Long("buf-size") => args.buf_size = number("--buf-size", parser.value()?, 1..=1 << 20)?,
            Long("conns") => args.conns = number("--conns", parser.value()?, 0..=u64::MAX)?,
            Short('h') | Long("help") => return Ok(Command::Help),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Serve(args))
}

/// `value` as a number in `range`; the error names the option and the range.
fn number<T>(option: &str, value: OsString, range: RangeInclusive<T>) -> Result<T, lexopt::Error>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    let text = value.to_string_lossy();
    match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{option} {text}: expected a number from {} to {}",
            range.start(),
            range.end()
        )
        .into()),
    }
}

/// What a submission stands for: its tag, as its completion records carry it.
#[derive(Debug, Clone, Copy)]
enum Event {
    Accept,
    Recv(usize),
    Send(usize),
}

impl Event {
    /// The tag: the kind in the low two bits, the connection above.
    fn tag(self) -> u64 {
        match self {
            Event::Accept => 0,
            Event::Recv(c) => (c as u64) << 2 | 1,
            Event::Send(c) => (c as u64) << 2 | 2,
        }
    }

    fn of(tag: u64) -> Self {
        let c = (tag >> 2) as usize;
        match tag & 3 {
            1 => Event::Recv(c),
            2 => Event::Send(c),
            _ => Event::Accept,
        }
    }
}

/// One connection.
struct Conn {
    fd: Fd,
    /// The multishot receive, while armed (its ticket, to cancel it; its items and its end
    /// come as completion records).
    recv: Option<Ticket<Multishot<RecvProvided>>>,
    /// Whether a send is in flight (one at a time keeps the bytes in order).
    sending: bool,
    /// Buffers received and waiting to be sent back.
    queue: VecDeque<ProvidedBuf>,
    /// Why the receive is not armed although the connection is open.
    paused: Paused,
    /// A cancel of the receive is on its way.
    cancelling: bool,
    /// The peer closed its end (or the connection failed): close once the queue is sent.
    done: bool,
}

/// Why a connection's receive is not armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paused {
    /// It is armed (or the connection is done).
    No,
    /// The ring ran dry (`ENOBUFS`): arm it again when buffers are back.
    Starved,
    /// Its queue is long (the peer reads slower than it writes): arm it again when the queue
    /// has drained, so that one connection cannot take every buffer.
    Backlog,
}

/// What a server run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed.
    pub closed: u64,
    /// Bytes sent back.
    pub bytes: u64,
    /// Receives pushed again after the ring ran dry or a queue drained.
    pub rearmed: u64,
}

/// The server's state: the ring, the buffer ring, the connections. Each submission carries
/// its [`Event`] as its tag, so a completion record says what it is for.
struct Server {
    ring: Uring,
    bufs: BufRing,
    listener: Fd,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Connections whose receive starved, to arm again.
    starved: Vec<usize>,
    /// Buffers one connection may hold before its receive pauses.
    max_queue: usize,
    stats: Stats,
}

/// Serves `listener` until `stop` says so (checked after each batch of completions) or
/// `args.conns` connections have closed.
pub fn serve(
    listener: TcpListener,
    args: &Args,
    stop: &dyn Fn(&Stats) -> bool,
) -> std::io::Result<Stats> {
    // One thread submits and reaps: the kernel may then run completion work only when that
    // thread enters it (DEFER_TASKRUN), in batches, instead of interrupting it per completion.
    let ring = Uring::with_builder(&Builder::new(4096).single_issuer().defer_taskrun())?;
    let bufs = BufRing::register(&ring, args.buffers, args.buf_size)?;
    let mut s = Server {
        ring,
        bufs,
        listener: Fd::new(listener),
        conns: Vec::new(),
        free: Vec::new(),
        starved: Vec::new(),
        max_queue: (args.buffers as usize / 8).max(2),
        stats: Stats::default(),
    };
    s.arm_accept()?;
    let finished = |s: &Stats| args.conns > 0 && s.closed >= args.conns;
    while !finished(&s.stats) && !stop(&s.stats) {
        // Hands the pushes over and waits for what finished: each record says what for (its
        // tag), and redeems its op's output or item. No ticket is scanned.
        s.ring.wait_completions(Duration::MAX)?;
        while let Some(c) = s.ring.next_completion() {
            match Event::of(c.tag()) {
                Event::Accept => s.on_accept(&c)?,
                Event::Recv(conn) => s.on_recv(conn, &c)?,
                Event::Send(conn) => s.on_send(conn, &c)?,
            }
        }
        s.rearm_starved()?;
    }
    Ok(s.stats)
}

impl Server {
    /// Pushes `op` tagged with `ev`.
    fn push<T: uring_ops::Submit>(&mut self, op: T, ev: Event) -> std::io::Result<Ticket<T>> {
        match self.ring.push_tagged(op, ev.tag()) {
            Ok(t) => Ok(t),
            // The SQ is full: hand it to the kernel and try again.
            Err(e) if matches!(e.error, uring_ops::Error::QueueFull { .. }) => {
                self.ring.submit()?;
                Ok(self.ring.push_tagged(e.op, ev.tag()).map_err(|e| e.error)?)
            }
            Err(e) => Err(e.error.into()),
        }
    }

    fn arm_accept(&mut self) -> std::io::Result<()> {
        let t = self.push(
            Accept::new(self.listener.clone()).multishot(),
            Event::Accept,
        )?;
        // Its records are all this loop needs (it is never cancelled): the last one redeems
        // it. (Detaching it would give up its items.)
        drop(t);
        Ok(())
    }

    fn on_accept(&mut self, c: &Completion) -> std::io::Result<()> {
        if c.more() {
            match self.ring.take_item::<Accept>(c)? {
                Ok(fd) => self.add_conn(fd)?,
                Err(e) => eprintln!("accept: {e}"),
            }
            return Ok(());
        }
        let out = self.ring.take::<Multishot<Accept>>(c)?;
        for fd in out.items.into_iter().flatten() {
            self.add_conn(fd)?;
        }
        if let Err(e) = out.last {
            eprintln!("accept ended: {e}; accepting again");
        }
        self.arm_accept()
    }

    fn add_conn(&mut self, fd: OwnedFd) -> std::io::Result<()> {
        self.stats.accepted += 1;
        let c = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        self.conns[c] = Some(Conn {
            fd: Fd::new(fd),
            recv: None,
            sending: false,
            queue: VecDeque::new(),
            paused: Paused::No,
            cancelling: false,
            done: false,
        });
        self.arm_recv(c)
    }

    fn arm_recv(&mut self, c: usize) -> std::io::Result<()> {
        let Some(conn) = &self.conns[c] else {
            return Ok(());
        };
        let op = RecvProvided::new(conn.fd.clone(), &self.bufs).multishot();
        let t = self.push(op, Event::Recv(c))?;
        if let Some(conn) = self.conns[c].as_mut() {
            conn.recv = Some(t);
            conn.paused = Paused::No;
        }
        Ok(())
    }

    /// Asks the kernel to end connection `c`'s receive; its last completion comes back
    /// through `on_recv`.
    fn cancel_recv(&mut self, c: usize) -> std::io::Result<()> {
        let Some(conn) = self.conns[c].as_mut() else {
            return Ok(());
        };
        let (Some(t), false) = (&conn.recv, conn.cancelling) else {
            return Ok(());
        };
        conn.cancelling = true;
        let cancel = uring_ops::ops::AsyncCancel::ticket(t);
        let t = self.ring.push(cancel).map_err(|e| e.error)?;
        self.ring.detach(t);
        Ok(())
    }

    fn on_recv(&mut self, c: usize, rec: &Completion) -> std::io::Result<()> {
        let Some(conn) = self.conns[c].as_mut() else {
            return Ok(());
        };
        let finished = !rec.more();
        let got = if finished {
            // The receive ended: its output (the items not taken, none here, and its end).
            conn.recv = None;
            let out = self.ring.take::<Multishot<RecvProvided>>(rec)?;
            out.items.into_iter().chain([out.last]).collect()
        } else {
            vec![self.ring.take_item::<RecvProvided>(rec)?]
        };
        for b in got {
            match b {
                Ok(b) if !b.is_empty() => conn.queue.push_back(b),
                Ok(_) => conn.done = true, // the peer closed its end
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOBUFS) => {
                        conn.paused = Paused::Starved;
                        self.starved.push(c);
                    }
                    Some(libc::ECANCELED) if conn.cancelling && !conn.done => {
                        conn.paused = Paused::Backlog;
                    }
                    Some(libc::ECANCELED | libc::ECONNRESET) => conn.done = true,
                    _ => {
                        eprintln!("receive: {e}");
                        conn.done = true;
                    }
                },
            }
        }
        if finished {
            conn.cancelling = false;
        }
        if conn.queue.len() >= self.max_queue && conn.recv.is_some() {
            self.cancel_recv(c)?;
        } else if self.resumable(c) {
            // Paused for a backlog that drained before the cancel completed.
            self.stats.rearmed += 1;
            self.arm_recv(c)?;
        }
        self.send_next(c)
    }

    /// Whether connection `c`'s receive, paused for its backlog, may be armed again.
    fn resumable(&self, c: usize) -> bool {
        self.conns[c].as_ref().is_some_and(|conn| {
            conn.paused == Paused::Backlog
                && conn.recv.is_none()
                && !conn.done
                && conn.queue.len() <= self.max_queue / 2
        })
    }

    fn on_send(&mut self, c: usize, rec: &Completion) -> std::io::Result<()> {
        let Some(conn) = self.conns[c].as_mut() else {
            return Ok(());
        };
        conn.sending = false;
        let (n, mut buf) = self.ring.take::<Send<ProvidedBuf>>(rec)?;
        match n {
            Ok(n) => {
                self.stats.bytes += n as u64;
                if n < buf.len() {
                    buf.advance(n);
                    conn.queue.push_front(buf);
                }
                // Otherwise dropping `buf` puts it back into the ring.
            }
            Err(_) => {
                conn.queue.clear();
                conn.done = true;
            }
        }
        if self.resumable(c) {
            self.stats.rearmed += 1;
            self.arm_recv(c)?;
        }
        self.send_next(c)
    }

    /// Sends the next queued buffer, or closes the connection when it is done and drained.
    fn send_next(&mut self, c: usize) -> std::io::Result<()> {
        let Some(conn) = self.conns[c].as_mut() else {
            return Ok(());
        };
        if conn.sending {
            return Ok(());
        }
        match conn.queue.pop_front() {
            Some(buf) => {
                let op = Send::new(conn.fd.clone(), buf).flags(libc::MSG_WAITALL);
                // Its completion record redeems it (`on_send`): the ticket is not needed.
                drop(self.push(op, Event::Send(c))?);
                if let Some(conn) = self.conns[c].as_mut() {
                    conn.sending = true;
                }
            }
            None if conn.done && conn.recv.is_none() => {
                // Nothing in flight on it any more: dropping the last handle closes it.
                self.conns[c] = None;
                self.free.push(c);
                self.stats.closed += 1;
            }
            // The send failed while the receive is armed: stop the receive.
            None if conn.done => self.cancel_recv(c)?,
            None => {}
        }
        Ok(())
    }

    /// Arms again the receives that ran dry, now that buffers may be back.
    fn rearm_starved(&mut self) -> std::io::Result<()> {
        if self.starved.is_empty() || self.bufs.available() == 0 {
            return Ok(());
        }
        for c in std::mem::take(&mut self.starved) {
            let ready = self.conns[c].as_ref().is_some_and(|conn| {
                conn.paused == Paused::Starved && conn.recv.is_none() && !conn.done
            });
            if ready {
                self.stats.rearmed += 1;
                self.arm_recv(c)?;
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Command::Serve(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("echo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("echo: listening on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    match serve(listener, &args, &|_| false) {
        Ok(s) => {
            println!(
                "served {} connections, {} bytes echoed, {} receives re-armed",
                s.closed, s.bytes, s.rearmed
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}
