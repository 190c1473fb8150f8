//! The socket as hyper sees it. Two things are added: every byte that arrives tells the
//! connection's [`Activity`] that a request is arriving (its header deadline starts),
//! and hyper's own answer to a request head it cannot parse (a URL over its fixed 64 KiB
//! limit, a header block over its buffer, a malformed request line), which has an empty
//! body, is replaced by the same status with our JSON error body. hyper writes that
//! answer before any service runs and then closes the connection, so this is the only
//! place it can be changed.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::admission::Activity;
use crate::http::error::ErrorBody;

pub struct TrackedIo {
    stream: TcpStream,
    activity: Arc<Activity>,
    /// Our replacement for hyper's parse-error answer, still to be written; once set,
    /// whatever else hyper writes on this closing connection is dropped.
    replacement: Option<Vec<u8>>,
    replaced_written: usize,
}

impl TrackedIo {
    pub fn new(stream: TcpStream, activity: Arc<Activity>) -> TrackedIo {
        TrackedIo {
            stream,
            activity,
            replacement: None,
            replaced_written: 0,
        }
    }

    /// Writes what is left of the replacement; Ready(Ok) when all of it is out.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(bytes) = &self.replacement else {
            return Poll::Ready(Ok(()));
        };
        while self.replaced_written < bytes.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.stream).poll_write(cx, &bytes[self.replaced_written..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.replaced_written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether `first` begins hyper's own answer to an unparsable head, and if so, the
    /// replacement queued.
    fn intercept(&mut self, first: &[u8]) -> bool {
        if self.replacement.is_some() {
            return true;
        }
        match hyper_parse_error_status(first) {
            Some(status) => {
                self.replacement = Some(parse_error_response(status));
                true
            }
            None => false,
        }
    }
}

/// The status of `bytes` when they are the head hyper writes for a request it could not
/// parse: 400, 414 or 431 with an empty body. Every answer of our own with one of those
/// statuses has a JSON body, so it never matches.
fn hyper_parse_error_status(bytes: &[u8]) -> Option<u16> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let rest = head.strip_prefix("HTTP/1.")?;
    let status: u16 = rest.get(2..5)?.parse().ok()?;
    let empty = head
        .split("\r\n")
        .any(|line| line.eq_ignore_ascii_case("content-length: 0"));
    (matches!(status, 400 | 414 | 431) && empty).then_some(status)
}

/// The answer to a request head hyper refused, in our error format.
fn parse_error_response(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        414 => ("URI Too Long", "Request URL is too long"),
        431 => (
            "Request Header Fields Too Large",
            "Request headers are too large or too many",
        ),
        _ => ("Bad Request", "Malformed HTTP request"),
    };
    let body = serde_json::to_vec(&ErrorBody {
        message: message.to_string(),
        errors: None,
        id: None,
        available: None,
        status: None,
    })
    .unwrap_or_else(|_| br#"{"message":"Malformed HTTP request"}"#.to_vec());
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.received();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.intercept(buf) {
            std::task::ready!(this.drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| &b[..]);
        if first.is_some_and(|first| this.intercept(first)) {
            std::task::ready!(this.drain(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.drain(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_parse_error_answers_are_replaced() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_parse_error_status(hyper_414), Some(414));
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_parse_error_status(hyper_431), Some(431));
        // Ours carry a body; an empty 204 or 408 is not a parse error; body bytes are not
        // a head.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{";
        assert_eq!(hyper_parse_error_status(ours), None);
        let no_content = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_parse_error_status(no_content), None);
        let timeout = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_parse_error_status(timeout), None);
        assert_eq!(hyper_parse_error_status(b"{\"message\":\"x\"}"), None);
    }

    #[test]
    fn the_replacement_is_a_complete_json_answer_that_closes() {
        let out = String::from_utf8(parse_error_response(414)).expect("utf-8");
        let (head, body) = out.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["message"], "Request URL is too long");
    }
}
