//! One connection's limits: admission under the connection caps, the wait for a request
//! head (a header-read timeout and an idle keep-alive timeout, through hyper's timer), and
//! the rejections hyper writes by itself, without a body, rewritten as JSON.

use crate::serve::ApiError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The connections held, in total and per client address. Taken by the accept loop, given
/// back by each connection's [`Slot`] when it closes.
pub(super) struct Admission {
    held: Mutex<Held>,
    max: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct Held {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
pub(super) struct Slot {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    pub(super) fn new(max: usize, max_per_address: usize) -> Self {
        Admission {
            held: Mutex::new(Held::default()),
            max: max.max(1),
            max_per_address: max_per_address.max(1),
        }
    }

    /// A place for a connection from `peer`, or the error to answer it with.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, ApiError> {
        let client = client_of(peer);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.total >= self.max {
            return Err(ApiError::Unavailable(format!(
                "the server holds {} connections, its limit (--max-connections): try again shortly",
                self.max
            )));
        }
        let mine = held.per_address.entry(client).or_default();
        if *mine >= self.max_per_address {
            return Err(ApiError::TooManyRequests(format!(
                "{client} holds {} connections to this server, the most one client address may \
                 (--max-connections-per-address): reuse them, or close some",
                self.max_per_address
            )));
        }
        *mine += 1;
        held.total += 1;
        Ok(Slot { admission: self.clone(), client })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.admission.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total -= 1;
        if let Some(n) = held.per_address.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                held.per_address.remove(&self.client);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is (an IPv4-mapped IPv6 address too),
/// IPv6 by its /64, the block one host is usually given whole.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

/// Bytes a connection has read: how its [`HeadTimer`] tells an idle connection from one
/// whose client has started sending a request.
#[derive(Default)]
pub(super) struct Activity {
    read: AtomicU64,
}

/// A client's socket as hyper sees it: counts the bytes read ([`Activity`]) and replaces
/// the bodiless rejections hyper writes by itself (a request head that does not parse, is
/// too large or has too long a target) with the same status and a JSON message.
pub(super) struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    /// A replacement answer, and how much of it is written.
    replacement: Vec<u8>,
    sent: usize,
}

impl<T> Watched<T> {
    pub(super) fn new(inner: T) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        (Watched { inner, activity: activity.clone(), replacement: Vec::new(), sent: 0 }, activity)
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// Writes what is left of a replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replacement.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.replacement[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` whole when it is one of hyper's own rejections, queueing its JSON
    /// replacement (written now as far as the socket takes it, the rest on flush).
    fn replace(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<io::Result<usize>> {
        let status = hyper_rejection(buf)?;
        self.replacement = ApiError::from_hyper(status).to_http1();
        self.sent = 0;
        match self.drain(cx) {
            Poll::Ready(Err(e)) => Some(Err(e)),
            _ => Some(Ok(buf.len())),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        self.activity.read.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(r) = self.replace(cx, buf) {
            return Poll::Ready(r);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        // A rejection is a head alone, the first slice of its write.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(r) = self.replace(cx, first)
        {
            return Poll::Ready(r);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The status of an answer hyper wrote by itself: a whole response head with status 400,
/// 414 or 431, `content-length: 0` and no content type. Every answer of the router carries
/// a body (the `json_everywhere` layer sees to it for errors), so none looks like this.
fn hyper_rejection(head: &[u8]) -> Option<StatusCode> {
    let rest = head.strip_prefix(b"HTTP/1.1 ").or_else(|| head.strip_prefix(b"HTTP/1.0 "))?;
    let status = match rest.get(..4)? {
        b"400 " => StatusCode::BAD_REQUEST,
        b"414 " => StatusCode::URI_TOO_LONG,
        b"431 " => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    if head.len() > 1024 || !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = head.to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    (has(b"\r\ncontent-length: 0\r\n") && !has(b"\r\ncontent-type:")).then_some(status)
}

/// hyper's timer for one connection, giving the wait for a request head two bounds: a new
/// connection, or a kept-alive one whose client has started sending its next request, has
/// `header` to send the whole head; a kept-alive connection with nothing sent yet may stay
/// idle for `idle`. hyper starts this wait when it is ready for a request (the connection
/// accepted, the previous response written) and ends the connection when it runs out.
pub(super) struct HeadTimer {
    activity: Arc<Activity>,
    header: Duration,
    idle: Duration,
    /// Waits begun: the first is the new connection's.
    waits: AtomicU64,
}

impl HeadTimer {
    pub(super) fn new(activity: Arc<Activity>, header: Duration, idle: Duration) -> Self {
        HeadTimer { activity, header, idle, waits: AtomicU64::new(0) }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadWait { sleep: Box::pin(tokio::time::sleep(duration)), head: None })
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // hyper sleeps until a deadline only to wait for a request head.
        let kept_alive = self.waits.fetch_add(1, Ordering::Relaxed) > 0;
        Box::pin(HeadWait {
            sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
            head: Some(Head {
                activity: self.activity.clone(),
                read_before: self.activity.read.load(Ordering::Relaxed),
                began: Instant::now(),
                first_byte: None,
                kept_alive,
                header: self.header,
                idle: self.idle,
            }),
        })
    }
}

/// One wait of a [`HeadTimer`].
struct HeadWait {
    sleep: Pin<Box<tokio::time::Sleep>>,
    head: Option<Head>,
}

struct Head {
    activity: Arc<Activity>,
    read_before: u64,
    began: Instant,
    first_byte: Option<Instant>,
    kept_alive: bool,
    header: Duration,
    idle: Duration,
}

impl Head {
    /// When the wait runs out, as of now. hyper polls the wait whenever the socket has
    /// news, so a first byte is seen as it arrives.
    fn deadline(&mut self) -> Instant {
        if self.first_byte.is_none() && self.activity.read.load(Ordering::Relaxed) != self.read_before {
            self.first_byte = Some(Instant::now());
        }
        match (self.kept_alive, self.first_byte) {
            (false, _) => self.began + self.header,
            (true, None) => self.began + self.idle,
            (true, Some(first)) => first + self.header,
        }
    }
}

impl Future for HeadWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(head) = &mut this.head {
            let deadline = head.deadline();
            if this.sleep.deadline() != deadline {
                this.sleep.as_mut().reset(deadline);
            }
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadWait {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_client_and_free_on_drop() {
        let a = Arc::new(Admission::new(3, 2));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let one = a.admit(ip("10.0.0.1")).unwrap();
        let two = a.admit(ip("::ffff:10.0.0.1")).unwrap();
        let refused = a.admit(ip("10.0.0.1")).err().unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message().contains("10.0.0.1 holds 2 connections"), "{}", refused.message());
        // One IPv6 host's /64 is one client.
        let v6 = a.admit(ip("2001:db8::1")).unwrap();
        let full = a.admit(ip("10.0.0.9")).err().unwrap();
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(v6);
        let _v6 = a.admit(ip("2001:db8::ffff:2")).unwrap();
        assert_eq!(a.admit(ip("2001:db8::3")).err().unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        drop((one, two));
        let _again = a.admit(ip("10.0.0.1")).unwrap();
        assert!(a.held.lock().unwrap().per_address.len() == 2);
    }

    #[test]
    fn only_hypers_own_bodiless_rejections_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 20:00:08 GMT\r\n\r\n";
        assert_eq!(hyper_rejection(hyper), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let bad = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_rejection(bad), Some(StatusCode::BAD_REQUEST));
        // The router's answers: with a JSON body, or not an error hyper makes.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_rejection(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 13\r\n\r\n{\"message\":1}";
        assert_eq!(hyper_rejection(with_body), None);
        assert_eq!(hyper_rejection(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(hyper_rejection(b"{\"message\": \"HTTP/1.1 400 \"}"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_waits_idle_then_has_the_header_time_from_its_first_byte() {
        use hyper::rt::Timer;
        let activity = Arc::new(Activity::default());
        let timer = HeadTimer::new(activity.clone(), Duration::from_secs(10), Duration::from_secs(60));
        let at = |s: u64| Instant::now().into_std() + Duration::from_secs(s);
        // The new connection's wait: the header time, whatever it sends.
        let mut first = timer.sleep_until(at(10));
        activity.read.fetch_add(5, Ordering::Relaxed);
        let started = Instant::now();
        first.as_mut().await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // A kept-alive wait: idle for up to 60 s, then 10 s from the first byte.
        let mut next = timer.sleep_until(at(10));
        let started = Instant::now();
        tokio::select! {
            () = next.as_mut() => panic!("an idle connection ran out before its idle time"),
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        activity.read.fetch_add(1, Ordering::Relaxed);
        next.as_mut().await;
        assert_eq!(started.elapsed(), Duration::from_secs(40));
        // Idle throughout: 60 s.
        let started = Instant::now();
        timer.sleep_until(at(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
