//! The accept loop: one task per connection, the TLS handshake under a timeout inside that task
//! (a slow client never holds up others), a bound on open connections, HTTP/1.1 with a bounded
//! request head, a header timeout, and an idle timeout for enrolled devices' kept-alive
//! connections. The device identity is read from the verified certificate here and attached to
//! every request on the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::audit_log::event;
use crate::state::{AppState, Conn, Peer};
use crate::tls::Reloadable;

/// Which port a loop serves.
pub enum Port {
    /// Mutual TLS; configuration reloaded with the CRL.
    Device(Arc<Reloadable>),
    /// Server-authenticated TLS.
    Operator(Arc<ServerConfig>),
}

pub async fn accept_loop(listener: TcpListener, port: Port, router: Router, state: Arc<AppState>) {
    let limits = state.config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let state = state.clone();
        let port = port.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (config, device_tls) = match &*port {
                Port::Device(r) => {
                    let current = r.current();
                    (current.config.clone(), Some(current))
                }
                Port::Operator(c) => (c.clone(), None),
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(
                Duration::from_millis(limits.handshake_timeout_ms),
                acceptor.accept(tcp),
            )
            .await;
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let resource = match &*port {
                        Port::Device(_) => "device-port",
                        Port::Operator(_) => "operator-port",
                    };
                    handshake_refused(&state, addr, resource, &e.to_string()).await;
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %addr, "TLS handshake timed out");
                    return;
                }
            };
            let peer = match &device_tls {
                Some(tls) => classify(tls, stream.get_ref().1.peer_certificates()),
                None => Peer::None,
            };
            // The verified leaf, for checking what the device signs with the same key.
            let certificate = match peer {
                Peer::Device(_) => stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| std::sync::Arc::<[u8]>::from(c.as_ref())),
                _ => None,
            };
            let conn = Conn {
                addr,
                peer,
                certificate,
                operator_port: device_tls.is_none(),
                broker: None,
            };
            // hyper's header timeout also bounds the idle wait between requests on a kept-alive
            // connection. An enrolled device proved its fleet certificate in the handshake, so
            // its connection may idle between polls; anyone else gets the short bound.
            let header_timeout = match conn.peer {
                Peer::Device(_) => limits.device_idle_timeout_ms,
                _ => limits.header_timeout_ms,
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(conn.clone());
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_millis(header_timeout))
                .max_buf_size(limits.max_header_bytes)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
        });
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
        match medsec_pki::manufacturer_device_id(leaf) {
            Some(id) => Peer::Manufacturer(id),
            None => Peer::Unidentified,
        }
    }
}

/// Audits a refused handshake on the port named `resource` (`device-port`, `operator-port`).
async fn handshake_refused(state: &AppState, addr: SocketAddr, resource: &str, reason: &str) {
    // Scanners and clients that hang up produce handshake errors too; they are audited, but at
    // most at the per-address request rate so they cannot flood the log.
    if !state.rate_ok(&format!("tls:{}", addr.ip())) {
        return;
    }
    let mut e = event("tls", "anonymous", "tls.handshake", resource, "deny");
    e.source = addr.to_string();
    e.detail = reason.to_owned();
    if let Err(err) = state.audit(e).await {
        tracing::error!(error = ?err, "could not audit a refused handshake");
    }
}
