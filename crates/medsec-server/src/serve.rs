//! The accept loop: one task per connection, the TLS handshake under a timeout inside that task
//! (a slow client never holds up others), HTTP/1.1 with a bounded request head, and the
//! connection's watchdog.
//!
//! Bounds, each in `[limits]`:
//! - open connections per port (`max_connections` on the device port,
//!   `max_operator_connections` on the operator port: a budget of its own, so a flood of the
//!   device port never locks operators out), per source address (an IPv6 address by its /64)
//!   and per device certificate; a connection over a cap is closed at once;
//! - the request head: `header_timeout_ms` from its first byte, on every connection;
//! - idle kept-alive connections: `device_idle_timeout_ms` for enrolled devices (so a poll
//!   needs no new handshake), `header_timeout_ms` for everyone else.
//!
//! The device identity is read from the verified certificate here and attached to every
//! request on the connection; when the CRL changes, a connection whose certificate it now lists
//! is closed (every request is checked against the CRL too, in `access.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::audit_log::event;
use crate::state::{AppState, Conn, Peer};
use crate::tls::Reloadable;

/// File descriptors kept for everything but client connections: the database and its
/// journal, the pool's connections, MQTT, key and CRL reads, logs.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and refuses to start unless both ports'
/// connection caps and [`RESERVED_DESCRIPTORS`] fit under it (naming both numbers), so that
/// a flood of connections meets medsec's own caps, never a failing `accept` on both ports.
/// Returns the limit in force.
pub fn fit_file_descriptors(limits: &crate::config::Limits) -> Result<u64, crate::Error> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let needed = u64::try_from(limits.max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(u64::try_from(limits.max_operator_connections).unwrap_or(u64::MAX))
        .saturating_add(RESERVED_DESCRIPTORS);
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(u64::MAX);
    let soft = now.current.unwrap_or(u64::MAX);
    let soft = if soft < hard {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        ) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(error = %e, soft, hard, "could not raise the file-descriptor limit");
                soft
            }
        }
    } else {
        soft
    };
    if needed > soft {
        return Err(crate::Error::Config {
            reason: format!(
                "the connection caps need {needed} file descriptors (limits.max_connections {} + \
                 limits.max_operator_connections {} + {RESERVED_DESCRIPTORS} for files), but the \
                 file-descriptor limit is {soft} (hard limit {hard}): lower the caps or raise \
                 the limit (ulimit -n, LimitNOFILE= in a systemd unit)",
                limits.max_connections, limits.max_operator_connections
            ),
        });
    }
    tracing::info!(
        limit = soft,
        needed,
        "file-descriptor limit fits the connection caps"
    );
    Ok(soft)
}

/// Which port a loop serves.
pub enum Port {
    /// Mutual TLS; configuration reloaded with the CRL.
    Device(Arc<Reloadable>),
    /// Server-authenticated TLS.
    Operator(Arc<ServerConfig>),
}

impl Port {
    /// The port's name in audit entries.
    fn resource(&self) -> &'static str {
        match self {
            Port::Device(_) => "device-port",
            Port::Operator(_) => "operator-port",
        }
    }

    /// The port's label in metrics.
    fn label(&self) -> &'static str {
        match self {
            Port::Device(_) => "device",
            Port::Operator(_) => "operator",
        }
    }
}

/// Open connections per key (a source address block, a device), bounded.
#[derive(Default)]
struct Counts(Mutex<HashMap<String, usize>>);

/// One open connection counted under a key; uncounted when dropped.
struct Counted {
    counts: Arc<Counts>,
    key: String,
}

impl Counts {
    /// Counts one more connection under `key`, unless `max` are open already.
    fn enter(self: &Arc<Self>, key: String, max: usize) -> Option<Counted> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

pub async fn accept_loop(listener: TcpListener, port: Port, router: Router, state: Arc<AppState>) {
    let limits = &state.config.limits;
    let slots = Arc::new(Semaphore::new(match port {
        Port::Device(_) => limits.max_connections,
        Port::Operator(_) => limits.max_operator_connections,
    }));
    let counts = Arc::new(Counts::default());
    let port = Arc::new(port);
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let block = crate::state::address_block(addr.ip());
        let Some(per_address) =
            counts.enter(format!("addr:{block}"), limits.max_connections_per_address)
        else {
            // Closed before the handshake costs anything; audited at most at the
            // per-address rate.
            drop(tcp);
            crate::metrics::global()
                .connections_refused
                .with_label_values(&[port.label(), "per-address"])
                .inc();
            refused(
                &state,
                addr,
                "anonymous",
                port.resource(),
                "connection.open",
                &format!(
                    "more than {} open connections from {block}",
                    limits.max_connections_per_address
                ),
            )
            .await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let state = state.clone();
        let port = port.clone();
        let counts = counts.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _per_address = per_address;
            let device_tls = match &*port {
                Port::Device(r) => Some(r.current()),
                Port::Operator(_) => None,
            };
            let handshake = tokio::time::timeout(
                Duration::from_millis(limits.handshake_timeout_ms),
                handshake(tcp, &port, device_tls.as_deref()),
            )
            .await;
            let metrics = crate::metrics::global();
            let stream = match handshake {
                Ok(Ok(s)) => {
                    metrics.handshake(port.label(), "ok");
                    s
                }
                Ok(Err(e)) => {
                    metrics.handshake(port.label(), "failed");
                    refused(
                        &state,
                        addr,
                        "anonymous",
                        port.resource(),
                        "tls.handshake",
                        &e.to_string(),
                    )
                    .await;
                    return;
                }
                Err(_) => {
                    metrics.handshake(port.label(), "timeout");
                    tracing::debug!(peer = %addr, "TLS handshake timed out");
                    return;
                }
            };
            let peer = match &device_tls {
                Some(tls) => classify(tls, stream.get_ref().1.peer_certificates()),
                None => Peer::None,
            };
            // The verified leaf, for checking what the device signs with the same key, and its
            // serial, checked against the CRL on every request.
            let certificate = match peer {
                Peer::Device(_) => stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| Arc::<[u8]>::from(c.as_ref())),
                _ => None,
            };
            let serial = certificate
                .as_deref()
                .and_then(crate::tls::serial_of)
                .map(Arc::<[u8]>::from);
            let _per_device = match &peer {
                Peer::Device(id) => {
                    let key = format!("device:{}", id.as_str());
                    match counts.enter(key, limits.max_connections_per_device) {
                        Some(c) => Some(c),
                        None => {
                            metrics
                                .connections_refused
                                .with_label_values(&[port.label(), "per-device"])
                                .inc();
                            let why = format!(
                                "more than {} open connections of device {}",
                                limits.max_connections_per_device,
                                id.as_str()
                            );
                            let label = format!("Device::{:?}", id.as_str());
                            refused(
                                &state,
                                addr,
                                &label,
                                port.resource(),
                                "connection.open",
                                &why,
                            )
                            .await;
                            return;
                        }
                    }
                }
                _ => None,
            };
            let conn = Conn {
                addr,
                peer,
                certificate,
                serial,
                operator_port: device_tls.is_none(),
                broker: None,
            };
            // A device connection closes when a reloaded CRL lists its certificate.
            let crl_watch = match (&*port, &conn.serial) {
                (Port::Device(r), Some(serial)) => Some(r.watch(serial.clone())),
                _ => None,
            };
            serve(conn, stream, router, &state, port.resource(), crl_watch).await;
        });
    }
}

/// The TLS handshake. On the device port the ClientHello is read first: a client that lists
/// X25519MLKEM768 among its groups, but after another, gets the configuration that offers only
/// that group, so the server's preference decides, not the order of the client's list (a
/// client that lists it first gets it from the usual configuration).
async fn handshake(
    tcp: tokio::net::TcpStream,
    port: &Port,
    device_tls: Option<&crate::tls::DeviceTls>,
) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let tls = match (port, device_tls) {
        (Port::Device(_), Some(tls)) => tls,
        (Port::Operator(config), _) => {
            return tokio_rustls::TlsAcceptor::from(config.clone())
                .accept(tcp)
                .await;
        }
        (Port::Device(_), None) => {
            return Err(std::io::Error::other("device port without its TLS state"));
        }
    };
    let start =
        tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
    let config = if crate::tls::offers_hybrid_after_another(&start.client_hello()) {
        tls.hybrid_config.clone()
    } else {
        tls.config.clone()
    };
    start.into_stream(config).await
}

/// Serves HTTP/1.1 on an established connection until it ends, its request head runs past
/// `header_timeout_ms`, or the CRL comes to list its certificate.
async fn serve<S>(
    conn: Conn,
    stream: S,
    router: Router,
    state: &AppState,
    resource: &'static str,
    mut crl_watch: Option<crate::tls::CrlWatch>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &state.config.limits;
    let addr = conn.addr;
    let principal = match &conn.peer {
        Peer::Device(id) => format!("Device::{:?}", id.as_str()),
        _ => "anonymous".to_owned(),
    };
    // hyper's header timer runs from the moment it waits for a request head, so it also bounds
    // the idle wait between requests: an enrolled device may idle between polls, anyone else
    // gets the short bound. A head that has begun is held to `header_timeout_ms` by the watchdog
    // below for everyone, so a device cannot pin its slot with a never-finished head.
    let idle = match conn.peer {
        Peer::Device(_) => limits.device_idle_timeout_ms,
        _ => limits.header_timeout_ms,
    };
    let head_timeout = Duration::from_millis(limits.header_timeout_ms);
    let phase = Arc::new(Phase::new());
    let service_phase = phase.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(conn.clone());
            let router = router.clone();
            let phase = service_phase.clone();
            phase.busy();
            async move {
                let response = router.oneshot(req.map(axum::body::Body::new)).await;
                phase.idle();
                response
            }
        });
    let watched = Watched {
        inner: stream,
        phase: phase.clone(),
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(idle))
        .max_buf_size(limits.max_header_bytes)
        .serve_connection(TokioIo::new(watched), service);
    tokio::pin!(connection);
    loop {
        // The watchdog wakes once per `header_timeout_ms` at most, never per request: at a
        // head's deadline if one is being read, else a full timeout from now (a head that
        // begins meanwhile is then checked at its own deadline).
        let now = Instant::now();
        let deadline = phase
            .head_started()
            .map_or(now + head_timeout, |t| t + head_timeout);
        tokio::select! {
            served = &mut connection => {
                if let Err(e) = served {
                    tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline.into()) => {
                if phase.head_started().is_some_and(|t| t + head_timeout <= Instant::now()) {
                    let why = format!(
                        "request head not complete within {} ms: connection closed",
                        limits.header_timeout_ms
                    );
                    refused(state, addr, &principal, resource, "http.head", &why).await;
                    return;
                }
            }
            () = revoked(crl_watch.as_ref()) => {
                let mut e = event("tls", &principal, "connection.close", resource, "deny");
                e.source = addr.to_string();
                e.detail = "the new CRL lists the connection's certificate: closed".into();
                if let Err(err) = state.audit(e).await {
                    tracing::error!(error = ?err, "could not audit a closed connection");
                }
                // A request in flight gets its answer (a re-enrolment superseding this very
                // certificate must deliver the new one), then the connection closes; no
                // further request is read. Requests are checked against the CRL anyway.
                connection.as_mut().graceful_shutdown();
                crl_watch = None;
            }
        }
    }
}

/// Waits until a reloaded CRL lists the connection's certificate, or forever for a
/// connection that presents none.
async fn revoked(crl_watch: Option<&crate::tls::CrlWatch>) {
    match crl_watch {
        Some(w) => w.revoked.notified().await,
        None => std::future::pending().await,
    }
}

/// Where a connection stands between its requests: idle, reading a request head (since when),
/// or busy with a request whose head was read. Atomics only: the request path pays a
/// compare-and-swap, and the watchdog reads it when it wakes.
struct Phase {
    /// 0: idle; `BUSY`: a request is being served; else the head's first byte, in
    /// milliseconds since `origin`, plus one.
    state: AtomicU64,
    origin: Instant,
}

const BUSY: u64 = u64::MAX;

impl Phase {
    fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Bytes arrived: on an idle connection, a request head begins now.
    fn bytes_arrived(&self) {
        if self.state.load(Ordering::Relaxed) != 0 {
            return;
        }
        let since = u64::try_from(self.origin.elapsed().as_millis())
            .unwrap_or(BUSY - 1)
            .saturating_add(1)
            .min(BUSY - 1);
        let _ = self
            .state
            .compare_exchange(0, since, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The head was read: the request is being served.
    fn busy(&self) {
        self.state.store(BUSY, Ordering::Release);
    }

    /// The answer is ready: idle until the next head begins.
    fn idle(&self) {
        let _ = self
            .state
            .compare_exchange(BUSY, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// When the head being read began, if one is.
    fn head_started(&self) -> Option<Instant> {
        match self.state.load(Ordering::Acquire) {
            0 | BUSY => None,
            since => Some(self.origin + Duration::from_millis(since - 1)),
        }
    }
}

/// The connection's plaintext stream, telling [`Phase`] when bytes arrive. Written by hand: no
/// crate bounds the time from a request head's first byte to its end separately from the idle
/// time before it (hyper's one timer covers both).
struct Watched<S> {
    inner: S,
    phase: Arc<Phase>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.phase.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Who the verified client certificate says the peer is.
fn classify(
    tls: &crate::tls::DeviceTls,
    chain: Option<&[rustls_pki_types::CertificateDer<'static>]>,
) -> Peer {
    let Some(chain) = chain.filter(|c| !c.is_empty()) else {
        return Peer::None;
    };
    let Some(leaf) = chain.first() else {
        return Peer::None;
    };
    // Without manufacturer anchors the handshake verifier is the fleet verifier; with them the
    // chain is checked again against the fleet alone.
    if !tls.manufacturers || tls.is_fleet_certificate(chain) {
        match medsec_pki::certificate_device_id(leaf) {
            Some(id) => Peer::Device(id),
            None => Peer::Unidentified,
        }
    } else {
        // The CA that vouches for it decides the scope enrolment holds it to.
        match (
            medsec_pki::manufacturer_device_id(leaf),
            tls.manufacturer_of(chain),
        ) {
            (Some(id), Some(manufacturer)) => {
                Peer::Manufacturer(Arc::new(crate::state::ManufacturerClaim {
                    id,
                    manufacturer,
                    fingerprint: hex::encode(medsec_crypto::digest::sha256(leaf.as_ref())),
                    hardware_types: medsec_pki::hardware_module_types(leaf),
                }))
            }
            _ => Peer::Unidentified,
        }
    }
}

/// Audits a refused connection (a failed handshake, a connection over a cap, a head that took
/// too long) on the port named `resource`. Scanners and clients that hang up produce such
/// refusals in bulk; they are audited at most at the per-address request rate so they cannot
/// flood the log.
async fn refused(
    state: &AppState,
    addr: SocketAddr,
    principal: &str,
    resource: &str,
    action: &str,
    reason: &str,
) {
    if !state.rate_ok(&format!("tls:{}", crate::state::address_block(addr.ip()))) {
        return;
    }
    let mut e = event("tls", principal, action, resource, "deny");
    e.source = addr.to_string();
    e.detail = reason.to_owned();
    if let Err(err) = state.audit(e).await {
        tracing::error!(error = ?err, "could not audit a refused connection");
    }
}
