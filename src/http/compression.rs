//! Response compression: gzip for clients that ask for it (`Accept-Encoding`), on
//! answers large enough to gain from it. The dashboard's scripts and stylesheet, long
//! leaderboards and histories, `/openapi.json` and `/metrics` shrink two- to tenfold
//! (the OpenAPI document from 64 KiB to 7); a client that sends no `Accept-Encoding` gets
//! every answer as before.
//!
//! The layer sits on the router, inside the request-id, trace, header-limit and timeout
//! layers: those see every request first, the request id is copied onto compressed
//! answers too, and the answers those layers make themselves (431, 408) are too small to
//! compress. A HEAD answer carries the headers its GET would (with `Content-Encoding`
//! when asked for gzip) and no body. The server makes no 304 answers (the dashboard's
//! files are sent `no-cache` without validators, so each load fetches them whole), so
//! none pass through here.
//!
//! Only gzip: every browser, curl `--compressed` and Prometheus (which asks for gzip on
//! each scrape) accept it. Brotli at the quality that suits compressing on the fly (4)
//! saves little over gzip on files this size, for a second codec in the binary.

use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

/// Answers below this many bytes go out as they are. A small answer travels in one
/// TCP segment either way (about 1,400 bytes of payload), so compressing it would cost
/// CPU for no fewer packets; the single-event answers, points and short boards the
/// benchmarks measure stay on the fast path.
pub const MIN_SIZE: u16 = 1024;

/// The layer, for `Router::layer`. Besides the size, it skips what tower-http's default
/// predicate skips: images other than SVG (already compressed), server-sent events (a
/// compressor would hold events back until its buffer fills) and gRPC.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().gzip(true).compress_when(
        SizeAbove::new(MIN_SIZE)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE)
            .and(NotForContentType::GRPC),
    )
}
