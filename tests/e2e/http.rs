//! A minimal HTTP/1.1 client over plain TCP that can send requests a normal client would not
//! (no Content-Length, wrong headers), for the services' request-error tests.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A parsed response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Sends raw request bytes (the connection is closed after the response).
pub(crate) async fn raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw_over(stream, request).await
}

/// Sends raw request bytes over an established stream (plain or TLS).
pub(crate) async fn raw_over<S>(mut stream: S, request: &[u8]) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await.unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(reply) = parse(&data) {
            return reply;
        }
    }
    parse(&data)
        .unwrap_or_else(|| panic!("incomplete response: {}", String::from_utf8_lossy(&data)))
}

/// Parses a complete response, or `None` if `data` is not one yet.
pub(crate) fn parse(data: &[u8]) -> Option<Reply> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = data.get(end + 4..end + 4 + length)?.to_vec();
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// A POST with a JSON body and the usual headers, plus `extra` header lines.
pub(crate) async fn post_json(addr: SocketAddr, path: &str, body: &str, extra: &[&str]) -> Reply {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    raw(addr, request.as_bytes()).await
}
