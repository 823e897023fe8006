//! Serving HTTP until a shutdown, and the shutdown itself: stop accepting, end every
//! subscription (each client is sent `complete`, then its socket is closed with 1001), let
//! in-flight requests finish within the grace period, then drop the connections still open
//! (dropping a request drops its transaction, which rolls back: never half written).
//!
//! The accept loop is axum's (`axum::serve`), with the connection tasks kept in a `JoinSet`
//! so that they can be dropped when the grace period ends.

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures::{SinkExt, Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rkflow_api::EventBus;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the handlers need to know about a shutdown: subscription sockets end with it.
#[derive(Clone)]
pub struct Shutdown {
    events: EventBus,
    /// Set when the grace period is over: whatever is still open is dropped.
    expired: Arc<watch::Sender<bool>>,
    /// Subscription sockets still open.
    sockets: Arc<watch::Sender<usize>>,
}

impl Shutdown {
    pub fn new(events: EventBus) -> Shutdown {
        Shutdown {
            events,
            expired: Arc::new(watch::channel(false).0),
            sockets: Arc::new(watch::channel(0).0),
        }
    }

    /// Whether the server is shutting down.
    pub fn begun(&self) -> bool {
        self.events.is_closed()
    }

    /// Resolves when the grace period is over.
    async fn expired(&self) {
        let _ = self.expired.subscribe().wait_for(|expired| *expired).await;
    }

    /// Resolves when every subscription socket is closed.
    async fn sockets_closed(&self) {
        let _ = self.sockets.subscribe().wait_for(|open| *open == 0).await;
    }

    fn open_sockets(&self) -> usize {
        *self.sockets.borrow()
    }

    /// Splits a subscription socket for `GraphQLWebSocket::new_with_pair`. The client's
    /// messages end once the shutdown has ended every subscription (so each has been sent
    /// `complete`) or the grace period is over; the server's side then closes the socket with
    /// 1001 (going away).
    pub fn websocket(
        &self,
        socket: WebSocket,
    ) -> (
        futures::channel::mpsc::Sender<Message>,
        impl Stream<Item = Result<Message, axum::Error>> + Send + use<>,
    ) {
        let (mut sink, stream) = socket.split();
        let (outgoing, mut queue) = futures::channel::mpsc::channel::<Message>(16);
        self.sockets.send_modify(|open| *open += 1);
        let shutdown = self.clone();
        tokio::spawn(async move {
            while let Some(message) = queue.next().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            if shutdown.begun() {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::AWAY,
                        reason: "the server is shutting down".into(),
                    })))
                    .await;
            }
            let _ = sink.close().await;
            shutdown
                .sockets
                .send_modify(|open| *open = open.saturating_sub(1));
        });
        let shutdown = self.clone();
        let end = async move {
            tokio::select! {
                _ = shutdown.events.drained() => {}
                _ = shutdown.expired() => {}
            }
        };
        (outgoing, stream.take_until(Box::pin(end)))
    }
}

/// Serves `app` on `listener` until `stop` resolves, then shuts down within `grace`; whether
/// everything finished in time (false: connections were dropped).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    shutdown: &Shutdown,
    grace: Duration,
) -> bool {
    let (draining, draining_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, app.clone(), draining_rx.clone()));
                }
                Err(err) => accept_failed(err).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stop => break,
        }
    }
    // New connections are refused from here on.
    drop(listener);
    let deadline = Instant::now() + grace;
    tracing::info!(
        connections = connections.len(),
        subscriptions = shutdown.open_sockets(),
        grace_seconds = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    shutdown.events.close();
    let _ = draining.send(true);
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
        shutdown.sockets_closed().await;
    })
    .await;
    if drained.is_ok() {
        return true;
    }
    tracing::warn!(
        connections = connections.len(),
        subscriptions = shutdown.open_sockets(),
        "shutting down: the grace period is over; dropping the remaining connections (their transactions roll back)"
    );
    shutdown.expired.send_replace(true);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    false
}

/// One connection, served until it closes; when draining starts it finishes the request in
/// flight and closes (an idle keep-alive connection closes at once).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut draining: watch::Receiver<bool>,
) {
    let router = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        hyper::service::Service::call(&router, request)
    });
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = draining.wait_for(|draining| *draining) => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// As axum does: a connection that failed before it was accepted is skipped; anything else
/// (too many open files) is logged and retried after a second.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
