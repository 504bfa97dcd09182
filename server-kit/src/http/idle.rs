//! Timers that cut off a peer who stops moving data: a request body that
//! stops (or trickles) while a handler waits for it, and a response the
//! client stops reading while the server waits to write it.
//!
//! Both share one rule, [`Progress`]: the peer may keep the server waiting
//! for at most `timeout` in total while it moves fewer than
//! [`MIN_PROGRESS_BYTES`]; each time it has moved that much, the count
//! starts again. Only time spent *waiting on the peer* counts, so a handler
//! that is slow to read (its downstream is busy, it waits for a memory
//! budget) never gets its client blamed. Like Apache's mod_reqtimeout
//! (`body=20,MinRate=500`), the rule catches a client that sends one byte
//! just inside every timeout as well as one that stops.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Bytes a peer must move within each timeout for the count to start
/// again: 16 KiB per 30 s (the default timeout) is about 550 B/s.
pub const MIN_PROGRESS_BYTES: u64 = 16 * 1024;

/// The stall rule over (time waited, bytes moved), with the clock passed
/// in so that it can be tested without sleeping.
#[derive(Debug, Clone)]
pub struct Progress {
    timeout: Duration,
    min_bytes: u64,
    /// Time waited on the peer in this window, before the current wait.
    waited: Duration,
    /// Bytes moved in this window.
    moved: u64,
    /// When the current wait began, if the server is waiting now.
    waiting_since: Option<Instant>,
}

impl Progress {
    pub fn new(timeout: Duration, min_bytes: u64) -> Self {
        Progress { timeout, min_bytes, waited: Duration::ZERO, moved: 0, waiting_since: None }
    }

    /// The server waits on the peer from `now` (or still waits): returns
    /// the instant at which the peer has stalled if nothing moves before.
    pub fn wait(&mut self, now: Instant) -> Instant {
        let since = *self.waiting_since.get_or_insert(now);
        since + self.timeout.saturating_sub(self.waited)
    }

    /// `bytes` moved at `now`, ending any wait.
    pub fn moved(&mut self, now: Instant, bytes: u64) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        self.moved = self.moved.saturating_add(bytes);
        if self.moved >= self.min_bytes {
            self.waited = Duration::ZERO;
            self.moved = 0;
        }
    }

    /// True once the peer has kept the server waiting for the whole timeout.
    pub fn stalled(&self, now: Instant) -> bool {
        let current = self.waiting_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
        self.waiting_since.is_some() && self.waited + current >= self.timeout
    }
}

/// A [`Progress`] with the timer that wakes the waiting task at its deadline.
struct Watch {
    progress: Progress,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Watch {
    fn new(timeout: Duration) -> Self {
        Watch { progress: Progress::new(timeout, MIN_PROGRESS_BYTES), sleep: None }
    }

    /// The transfer returned `Pending`: true if the peer has stalled
    /// (otherwise the task is woken at the deadline to look again).
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.progress.wait(Instant::now());
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).is_ready() || self.progress.stalled(Instant::now())
    }

    fn moved(&mut self, bytes: usize) {
        self.progress.moved(Instant::now(), bytes as u64);
    }
}

/// The error of a request body whose client stalled.
#[derive(Debug)]
pub struct BodyStalled {
    pub timeout: Duration,
}

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client sent less than {MIN_PROGRESS_BYTES} bytes of the request body in {} ms of waiting", self.timeout.as_millis())
    }
}

impl std::error::Error for BodyStalled {}

/// A request body that fails with [`BodyStalled`] when its client stalls.
pub struct IdleBody<B> {
    inner: Pin<Box<B>>,
    watch: Watch,
    stalled: bool,
}

impl<B> IdleBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        IdleBody { inner: Box::pin(inner), watch: Watch::new(timeout), stalled: false }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if this.stalled {
            return Poll::Ready(Some(Err(Box::new(BodyStalled { timeout: this.watch.progress.timeout }))));
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.watch.moved(frame.data_ref().map_or(0, Bytes::len));
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending if this.watch.poll_stalled(cx) => {
                this.stalled = true;
                Poll::Ready(Some(Err(Box::new(BodyStalled { timeout: this.watch.progress.timeout }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.stalled && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail with `TimedOut` when the client stops
/// reading: a response it never takes must not hold the connection and the
/// memory behind it forever. Reads pass through (hyper times the header,
/// [`IdleBody`] the body).
pub struct StallGuard<IO> {
    io: IO,
    watch: Watch,
}

impl<IO> StallGuard<IO> {
    pub fn new(io: IO, timeout: Duration) -> Self {
        StallGuard { io, watch: Watch::new(timeout) }
    }

    fn on_write(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                self.watch.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.watch.poll_stalled(cx) => {
                let ms = self.watch.progress.timeout.as_millis();
                Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the client read nothing for {ms} ms"))))
            }
            other => other,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StallGuard<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StallGuard<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.on_write(cx, polled)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.on_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(30);
    const MIN: u64 = 1000;

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_peer_that_stops_stalls_at_the_timeout() {
        let t0 = Instant::now();
        let mut p = Progress::new(T, MIN);
        assert_eq!(p.wait(t0), at(t0, 30));
        assert!(!p.stalled(at(t0, 29)));
        assert!(p.stalled(at(t0, 30)));
    }

    #[test]
    fn a_trickle_below_the_minimum_stalls_like_a_stop() {
        let t0 = Instant::now();
        let mut p = Progress::new(T, MIN);
        // One byte just inside every 29 s: the waits add up.
        p.wait(t0);
        p.moved(at(t0, 29), 1);
        let deadline = p.wait(at(t0, 29));
        assert_eq!(deadline, at(t0, 30), "only 1 s of the timeout is left");
        assert!(p.stalled(at(t0, 30)));
    }

    #[test]
    fn enough_bytes_start_the_count_again() {
        let t0 = Instant::now();
        let mut p = Progress::new(T, MIN);
        p.wait(t0);
        p.moved(at(t0, 20), 600);
        p.wait(at(t0, 20));
        p.moved(at(t0, 29), 400); // 1000 bytes in this window: a new one begins
        assert_eq!(p.wait(at(t0, 29)), at(t0, 59));
        assert!(!p.stalled(at(t0, 58)));
    }

    #[test]
    fn time_the_server_is_not_waiting_does_not_count() {
        let t0 = Instant::now();
        let mut p = Progress::new(T, MIN);
        p.wait(t0);
        p.moved(at(t0, 10), 1); // waited 10 s
                                // The handler is busy for an hour (not polling): no blame.
        assert!(!p.stalled(at(t0, 3600)));
        assert_eq!(p.wait(at(t0, 3600)), at(t0, 3620));
    }

    /// A body fed frame by frame through a channel.
    struct Fed(tokio::sync::mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    async fn next(body: &mut IdleBody<Fed>) -> Option<Result<Frame<Bytes>, axum::BoxError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_body_that_stops_fails_after_the_timeout_and_the_end_is_not_a_stall() {
        let timeout = Duration::from_millis(200);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut body = IdleBody::new(Fed(rx), timeout);
        tx.send(Bytes::from(vec![1u8; 20_000])).await.unwrap();
        let frame = next(&mut body).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap().len(), 20_000);
        let start = Instant::now();
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(err.is::<BodyStalled>(), "{err}");
        let took = start.elapsed();
        assert!(took >= timeout && took < 10 * timeout, "failed after {took:?}");
        assert!(next(&mut body).await.unwrap().is_err(), "a stalled body stays failed");

        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut body = IdleBody::new(Fed(rx), timeout);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        drop(tx);
        assert!(next(&mut body).await.unwrap().is_ok());
        assert!(next(&mut body).await.is_none());
    }
}
