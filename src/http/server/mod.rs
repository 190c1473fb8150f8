//! Serving HTTP on a listener: accepting connections under `MAX_CONNECTIONS`, closing
//! the ones that keep a place without being served (`HEADER_READ_TIMEOUT_SECS`,
//! `KEEP_ALIVE_TIMEOUT_SECS`), and draining on shutdown. axum's own `serve` has none of
//! these limits, so the connection loop is ours; hyper does the HTTP.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

mod admission;
mod io;

pub use admission::Deadlines;
use admission::{Admission, Admitted, Closed, RequestGuard};

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in
/// flight finish and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Admission::new(max_connections);
    // Dropping `stop` tells every connection to finish; `done` is closed when the last
    // connection has dropped its receiver.
    let (stop, stopped) = watch::channel(());
    let (done, _) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = tokio::select! {
            admitted = admission.admit() => admitted,
            () = &mut shutdown => break,
        };
        // Small JSON answers must not wait for Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            stream,
            admitted,
            router.clone(),
            deadlines,
            stopped.clone(),
            done.subscribe(),
        ));
    }
    drop(listener);
    drop(stop);
    done.closed().await;
}

/// An accept error that is about one connection (it reset before being accepted) is
/// skipped; one about the process (out of file descriptors) is waited out, as a tight
/// retry loop would only spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    admitted: Admitted,
    router: Router,
    deadlines: Deadlines,
    mut stopped: watch::Receiver<()>,
    _done: watch::Receiver<()>,
) {
    let activity = admitted.activity.clone();
    let io = TokioIo::new(io::TrackedIo::new(stream, activity.clone()));
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let guard = activity.begin();
        let call = router.clone().oneshot(req.map(Body::new));
        async move {
            let response = call.await?;
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(Tracked {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let mut conn =
        pin!(builder.serve_connection_with_upgrades(io, TowerToHyperService::new(service)));
    let activity = &admitted.activity;
    let mut draining = false;
    loop {
        // Computed afresh each turn: a request that started or ended moves it.
        let deadline = activity.deadline(&deadlines);
        let expire = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = activity.changed() => {
                if activity.is_evicted() && activity.deadline(&deadlines).is_some() {
                    closed(Closed::Evicted);
                    break;
                }
            }
            () = expire => {
                // Still without a request in progress, past its deadline: close it. (A
                // request that began meanwhile cleared the deadline.)
                if let Some((at, why)) = activity.deadline(&deadlines) {
                    if at <= tokio::time::Instant::now() {
                        closed(why);
                        break;
                    }
                }
            }
            _ = stopped.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn closed(why: Closed) {
    if why != Closed::Evicted {
        metrics::counter!("http_connections_closed_total", "reason" => why.as_str()).increment(1);
    }
    tracing::debug!(
        reason = why.as_str(),
        "closing a connection with no request in progress"
    );
}

/// A response body that keeps its request counted as in progress until it has been
/// written out (hyper drops it then), so a slow reader is not taken for an idle client.
struct Tracked {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
