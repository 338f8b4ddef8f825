//! `:authority` over a Unix socket. Since gRPC 1.57 the C-core clients (Python's `grpcio`, and
//! with it the SPIFFE project's `spiffe` package; C++, Ruby, PHP) send the percent-encoded
//! socket path as `:authority` (`tmp%2Fagent.sock`), which is not an authority; the `h2`
//! server behind hyper refuses such a request with `RST_STREAM(PROTOCOL_ERROR)` and offers no
//! setting to relax it (grpc/grpc#38142; hyperium/h2#487 is still open). Go and Rust clients
//! send `localhost`. So that the Workload API serves every SPIFFE client unmodified, this relay
//! sits between the socket and the HTTP/2 server: the client's frames are decoded with h2's
//! own codec and re-encoded with `:authority: localhost` (nothing else is changed; the
//! authority of a Unix socket names nothing); the server's bytes pass through untouched.
//!
//! Padding of the client's DATA frames is not carried over (gRPC clients send none); a frame
//! the codec cannot read ends the connection.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use h2::frame::{Frame, Pseudo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest header list the relay decodes, bytes (the server's own limit is the same).
pub const MAX_HEADER_LIST: usize = 16 * 1024;

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// A request's header frame with `:authority: localhost` (when it names one).
fn localized(f: Frame) -> Frame {
    match f {
        Frame::Headers(mut h) => {
            let p = h.pseudo_mut();
            if p.authority.is_some() {
                p.authority = Pseudo::request(
                    http::Method::GET,
                    http::Uri::from_static("http://localhost/"),
                    None,
                )
                .authority;
            }
            Frame::Headers(h)
        }
        other => other,
    }
}

/// Relays one connection between `client` and `server` until either side closes.
pub async fn relay<C, S>(client: C, server: S) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let down = async move {
        let r = tokio::io::copy(&mut sr, &mut cw).await;
        let _ = cw.shutdown().await;
        r.map(|_| ())
    };
    let up = async move {
        let mut p = [0u8; 24];
        cr.read_exact(&mut p).await?;
        if &p != PREFACE {
            return Err(io("not an HTTP/2 connection preface"));
        }
        sw.write_all(&p).await?;
        let mut frames: h2::Codec<_, Bytes> =
            h2::Codec::new(tokio::io::join(cr, tokio::io::sink()));
        frames.set_max_recv_header_list_size(MAX_HEADER_LIST);
        let mut out: h2::Codec<_, Bytes> = h2::Codec::new(tokio::io::join(tokio::io::empty(), sw));
        while let Some(f) = frames.next().await {
            let f = f.map_err(io)?;
            out.send(localized(f)).await.map_err(io)?;
        }
        out.close().await.map_err(io)
    };
    // the connection ends when the server closes it, or when the client's side fails
    tokio::select! {
        r = down => r,
        r = up => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_authority_changes() {
        let mut fields = http::HeaderMap::new();
        fields.insert("workload.spiffe.io", "true".parse().unwrap());
        let mut pseudo = Pseudo::request(
            http::Method::POST,
            http::Uri::from_static("http://x/SpiffeWorkloadAPI/FetchX509SVID"),
            None,
        );
        // what grpcio sends: the socket path, percent-encoded
        let bad = Pseudo::request(
            http::Method::GET,
            http::Uri::from_static("http://tmp-agent.sock/"),
            None,
        );
        pseudo.authority = bad.authority;
        let mut h = h2::frame::Headers::new(1.into(), pseudo, fields);
        h.set_end_stream();
        let Frame::Headers(h) = localized(Frame::Headers(h)) else {
            panic!("not headers")
        };
        assert!(h.is_end_stream());
        assert_eq!(h.fields()["workload.spiffe.io"], "true");
        let (p, _) = h.into_parts();
        let expected = Pseudo::request(
            http::Method::POST,
            http::Uri::from_static("http://localhost/SpiffeWorkloadAPI/FetchX509SVID"),
            None,
        );
        assert_eq!(p, expected);
    }
}
