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

use crate::config::{invalid, ConfigError, Vars};

/// Where the server listens: `API_SERVER_HOST` (default `0.0.0.0`) and
/// `API_SERVER_PORT` (default 3000; 0 picks a free port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// An IP address or a host name, resolved when the server starts.
    pub host: String,
    pub port: u16,
}

impl ListenAddress {
    pub fn from_vars(vars: &Vars) -> Result<ListenAddress, ConfigError> {
        let host = vars.get("API_SERVER_HOST").unwrap_or("0.0.0.0").to_string();
        if !valid_host(&host) {
            return Err(invalid(
                "API_SERVER_HOST",
                &host,
                "an IP address or a host name (resolved when the server starts)",
            ));
        }
        let port = match vars.get("API_SERVER_PORT") {
            None => 3000,
            Some(v) => v
                .parse::<u16>()
                .map_err(|_| invalid("API_SERVER_PORT", v, "a port number from 0 to 65535"))?,
        };
        Ok(ListenAddress { host, port })
    }
}

/// An IP address, or a syntactically valid host name (RFC 1123: dot-separated labels of
/// letters, digits and inner hyphens, at most 63 characters each and 253 in all; `_` is
/// allowed too, as in Docker Compose service names). Whether the name resolves is only
/// known when the server binds, which then fails naming API_SERVER_HOST.
fn valid_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn listen(pairs: &[(&str, &str)]) -> Result<ListenAddress, ConfigError> {
        ListenAddress::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn the_default_address_is_every_interface_on_port_3000() {
        let l = listen(&[]).unwrap();
        assert_eq!((l.host.as_str(), l.port), ("0.0.0.0", 3000));
        assert_eq!(listen(&[("API_SERVER_PORT", "0")]).unwrap().port, 0);
        for bad in ["70000", "http", "-1"] {
            let e = listen(&[("API_SERVER_PORT", bad)]).unwrap_err();
            assert_eq!(e.var, "API_SERVER_PORT", "{bad}");
        }
    }

    #[test]
    fn api_server_host_is_an_ip_address_or_a_host_name() {
        for host in [
            "0.0.0.0",
            "127.0.0.1",
            "::1",
            "::",
            "localhost",
            "api.internal",
            "eventtracker-1.svc.cluster.local.",
            "HOST9",
            "compose_service",
        ] {
            assert_eq!(listen(&[("API_SERVER_HOST", host)]).unwrap().host, host);
        }
        for host in [
            "bad host",
            "-lead.example",
            "trail-.example",
            "a..b",
            "http://x",
            "x:3000",
            "[::1]",
            &"a".repeat(64),
        ] {
            let e = listen(&[("API_SERVER_HOST", host)]).unwrap_err();
            assert_eq!(e.var, "API_SERVER_HOST", "{host}");
        }
    }
}
