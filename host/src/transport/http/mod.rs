//! MCP over Streamable HTTP on hyper: `POST /mcp` answered with JSON or, when the client
//! accepts it and the call streams notifications, Server-Sent Events; `DELETE /mcp` closes a
//! session; `GET /mcp` is 405 (this server starts no streams of its own); `GET /healthz` for
//! orchestrators.
//!
//! Every request is checked before it is read: `Host` and `Origin` (DNS rebinding), the bearer
//! token when one is set, the body size. Stateful clients (2024-11-05 … 2025-11-25) get an
//! `Mcp-Session-Id` at `initialize`; a request naming an unknown or closed session gets 404.
//! Requests without a session — stateless 2026-07-28 clients, the legacy form, curl — are
//! answered on their own. Closing a response stream cancels its requests. On shutdown the
//! server stops accepting, cancels what runs and lets the replies go out.

mod access;
mod connections;
mod service;
mod sessions;

pub use access::AllowedHosts;

use crate::protocol::Server;
use connections::{Admitted, Connections};
use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use service::Service;
use sessions::Sessions;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the HTTP server runs.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Host names requests may address (`Host`, `Origin`).
    pub allowed_hosts: AllowedHosts,
    /// The bearer token every request must carry, if set.
    pub auth_token: Option<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request may run before it is cancelled.
    pub request_timeout: Duration,
    /// Most open sessions.
    pub max_sessions: usize,
    /// A session unused this long is closed.
    pub session_idle_timeout: Duration,
    /// How long shutdown waits for replies to go out.
    pub shutdown_grace: Duration,
    /// Most connections open at once: past it, a new one evicts the connection idle the
    /// longest, or is closed when every one has a request in progress.
    pub max_connections: usize,
    /// Most connections open at once from one address (the same eviction applies).
    pub max_connections_per_peer: usize,
    /// Longest a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body.
    pub read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: AllowedHosts::new([]),
            auth_token: None,
            max_body_bytes: 16 << 20,
            request_timeout: Duration::from_secs(3600),
            max_sessions: 1024,
            session_idle_timeout: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_peer: 256,
            header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `server` on `listener` until `shutdown` completes, then shuts down gracefully.
pub async fn serve(
    server: Server,
    listener: TcpListener,
    config: HttpConfig,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopping) = watch::channel(false);
    let grace = config.shutdown_grace;
    let connections = Connections::new(config.max_connections, config.max_connections_per_peer);
    let service = Arc::new(Service {
        sessions: Sessions::new(config.max_sessions, config.session_idle_timeout),
        server,
        config,
        stopping,
    });
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // At a cap with every connection busy, the newcomer is closed at once.
                let Some(admitted) = connections.admit(peer.ip()) else {
                    tracing::warn!(%peer, "refused a connection: every connection is busy");
                    continue;
                };
                spawn_connection(&service, stream, peer, admitted, &graceful);
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: cancelling running requests");
    let _ = stop.send(true);
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {grace:?}; closing them");
    }
    Ok(())
}

/// Serves HTTP/1 on an admitted connection from `peer`, in a task of its own, until it ends,
/// the server shuts down, or it is evicted to make room for another.
fn spawn_connection(
    service: &Arc<Service>,
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    graceful: &GracefulShutdown,
) {
    // Replies and progress events go out as soon as they are written.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
    }
    let service = service.clone();
    let activity = admitted.activity.clone();
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(service.config.header_timeout)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| {
                let service = service.clone();
                // The connection is busy until the reply's body is done.
                let busy = activity.request();
                async move {
                    let response = service.handle(request).await.map(|body| {
                        body.map_frame(move |frame| {
                            let _busy = &busy;
                            frame
                        })
                        .boxed_unsync()
                    });
                    Ok::<_, std::convert::Infallible>(response)
                }
            }),
        );
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        let mut admitted = admitted;
        tokio::select! {
            ended = connection => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            }
            _ = &mut admitted.evicted => {}
        }
        drop(admitted);
    });
}

/// Binds `host:port` and serves until SIGINT or SIGTERM.
pub async fn run(server: Server, host: &str, port: u16, config: HttpConfig) -> std::io::Result<()> {
    let listener = TcpListener::bind((host, port)).await?;
    tracing::info!(address = %listener.local_addr()?, "serving MCP over HTTP at /mcp");
    serve(server, listener, config, shutdown_signal()).await
}

/// Completes at SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
