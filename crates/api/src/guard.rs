//! The API's listener: a cap on open connections, a deadline for a connection's first bytes and
//! an idle timeout, so connections that send nothing cannot use up the daemon's file descriptors
//! or starve `health` and `chat`.
//!
//! At the cap a new connection is still accepted, and the connection that has been quiet the
//! longest is closed to make room (one that never sent a byte first): a flood of idle
//! connections pushes out its own oldest members, never a client that is talking.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Limits for the API's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most (the daemon's file limit may be 256; tmux, SQLite and the
    /// connectors need descriptors too).
    pub max_connections: usize,
    /// A new connection must send its first bytes within this.
    pub first_bytes: Duration,
    /// A connection with no traffic either way for this long is closed (the event stream's
    /// keep-alive comments count as traffic).
    pub idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 128,
            first_bytes: Duration::from_secs(10),
            // Longer than the longest command (`--timeout` is at most an hour).
            idle: Duration::from_secs(mosaic_grammar::MAX_WAIT_SECS + 60),
        }
    }
}

#[derive(Default)]
struct ConnState {
    /// Some byte arrived.
    talked: AtomicBool,
    /// Told to close (evicted), or already closed.
    evicted: AtomicBool,
    closed: AtomicBool,
    /// Last traffic either way.
    last: Mutex<Option<Instant>>,
    /// The task polling the connection, to wake on eviction.
    waker: Mutex<Option<Waker>>,
}

impl ConnState {
    fn touch(&self) {
        *self.last.lock().unwrap() = Some(Instant::now());
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// A TCP listener enforcing [`Limits`] (an axum [`axum::serve::Listener`]).
pub struct GuardedListener {
    inner: TcpListener,
    limits: Limits,
    open: Vec<Arc<ConnState>>,
}

impl GuardedListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, limits: Limits) -> GuardedListener {
        GuardedListener {
            inner,
            limits,
            open: Vec::new(),
        }
    }

    /// Makes room for one more connection when at the cap.
    fn make_room(&mut self) {
        self.open.retain(|c| !c.closed.load(Ordering::Relaxed));
        let live: Vec<&Arc<ConnState>> = self
            .open
            .iter()
            .filter(|c| !c.evicted.load(Ordering::Relaxed))
            .collect();
        if live.len() < self.limits.max_connections {
            return;
        }
        // Quiet ones first (never talked), then the longest without traffic.
        let victim = live
            .into_iter()
            .min_by_key(|c| (c.talked.load(Ordering::Relaxed), *c.last.lock().unwrap()));
        if let Some(v) = victim {
            v.evict();
        }
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    self.make_room();
                    let state = Arc::new(ConnState::default());
                    state.touch();
                    self.open.push(state.clone());
                    let deadline = Box::pin(tokio::time::sleep(self.limits.first_bytes));
                    return (
                        GuardedStream {
                            stream,
                            state,
                            deadline,
                            idle: self.limits.idle,
                        },
                        addr,
                    );
                }
                // Out of descriptors or a connection reset before accept: wait, go on.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One accepted connection under [`Limits`].
pub struct GuardedStream {
    stream: TcpStream,
    state: Arc<ConnState>,
    deadline: Pin<Box<Sleep>>,
    idle: Duration,
}

impl GuardedStream {
    fn traffic(&mut self) {
        self.state.touch();
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// An error when the connection is evicted or its deadline passed.
    fn check(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        *self.state.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.state.evicted.load(Ordering::Relaxed) {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for another connection",
            ));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
        }
        None
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::Relaxed);
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.state.talked.store(true, Ordering::Relaxed);
                    self.traffic();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        let r = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.traffic();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn listener(limits: Limits) -> (GuardedListener, SocketAddr) {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        (GuardedListener::new(inner, limits), addr)
    }

    /// Serves each accepted connection by echoing until it fails.
    fn echo(mut io: GuardedStream) {
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }

    #[tokio::test]
    async fn silent_and_idle_connections_are_closed() {
        let (mut l, addr) = listener(Limits {
            max_connections: 10,
            first_bytes: Duration::from_millis(200),
            idle: Duration::from_millis(600),
        })
        .await;
        tokio::spawn(async move {
            loop {
                let (io, _) = l.accept().await;
                echo(io);
            }
        });
        let started = std::time::Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(silent.read(&mut buf).await.unwrap_or(0), 0, "closed");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        // One that talks lives past the first deadline, then idles out.
        let mut talker = TcpStream::connect(addr).await.unwrap();
        talker.write_all(b"hi").await.unwrap();
        talker.read_exact(&mut buf[..2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        talker.write_all(b"yo").await.unwrap();
        talker.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(&buf[..2], b"yo", "alive after the first-bytes deadline");
        assert_eq!(talker.read(&mut buf).await.unwrap_or(0), 0, "idle: closed");
    }

    #[tokio::test]
    async fn at_the_cap_the_quietest_connection_makes_room() {
        let (mut l, addr) = listener(Limits {
            max_connections: 2,
            first_bytes: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        })
        .await;
        tokio::spawn(async move {
            loop {
                let (io, _) = l.accept().await;
                echo(io);
            }
        });
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 8];
        talker.write_all(b"a").await.unwrap();
        talker.read_exact(&mut buf[..1]).await.unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut newcomer = TcpStream::connect(addr).await.unwrap();
        newcomer.write_all(b"b").await.unwrap();
        newcomer.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(&buf[..1], b"b", "the newcomer is served");
        assert_eq!(
            silent.read(&mut buf).await.unwrap_or(0),
            0,
            "the silent one made room"
        );
        talker.write_all(b"c").await.unwrap();
        talker.read_exact(&mut buf[..1]).await.unwrap();
        assert_eq!(&buf[..1], b"c", "the talker was kept");
    }
}
