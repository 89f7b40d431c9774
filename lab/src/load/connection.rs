//! The generator's client: a keep-alive HTTP/1.1 connection that sends one request at a time
//! (no pipelining) and reads the response by its Content-Length, the least work a client can
//! do, so that the generator takes as little CPU as possible from the service it measures.
//!
//! The socket asks the kernel to time-stamp what it receives (`SO_TIMESTAMPNS`), so each answer
//! also has the time its last bytes reached this machine's socket: the "wire" latency, which
//! does not include how long the generator's own threads took to get to it. The time the
//! request was handed to the kernel is kept too, to tell how late the generator itself sent it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::error::LabError;

/// One keep-alive connection.
#[derive(Debug)]
pub struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
    request: Vec<u8>,
}

/// What one exchange gave: the response's status, when the request had been written to the
/// socket, and when the response's last bytes arrived (kernel receive time-stamp, if the kernel
/// gave one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// When the request had been written.
    pub sent: SystemTime,
    /// When the answer's last bytes reached the socket.
    pub arrived: Option<SystemTime>,
}

impl Connection {
    /// Connects to `address`, without Nagle's delay, asking for receive time-stamps.
    pub async fn open(address: SocketAddr) -> Result<Self, LabError> {
        let connect_error = |e: std::io::Error| LabError::Connect {
            address,
            detail: e.to_string(),
        };
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(connect_error)?;
        stream.set_nodelay(true).map_err(connect_error)?;
        nix::sys::socket::setsockopt(
            &stream,
            nix::sys::socket::sockopt::ReceiveTimestampns,
            &true,
        )
        .map_err(|e| LabError::Timestamps(e.to_string()))?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(4096),
            request: Vec::with_capacity(1024),
        })
    }

    /// Sends a JSON POST of `body` to `path` and waits for the whole answer.
    pub async fn post(&mut self, path: &str, body: &str) -> Result<Answer, LabError> {
        use tokio::io::AsyncWriteExt;
        let io = |e: std::io::Error| LabError::Http(e.to_string());
        self.request.clear();
        self.request.extend_from_slice(
            format!("POST {path} HTTP/1.1\r\nHost: load\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len())
                .as_bytes(),
        );
        self.request.extend_from_slice(body.as_bytes());
        self.stream.write_all(&self.request).await.map_err(io)?;
        let sent = SystemTime::now();
        self.buffer.clear();
        let mut arrived = None;
        loop {
            let mut chunk = [0u8; 4096];
            let (n, stamp) = self
                .stream
                .async_io(tokio::io::Interest::READABLE, || {
                    receive(&self.stream, &mut chunk)
                })
                .await
                .map_err(io)?;
            if n == 0 {
                return Err(LabError::Closed);
            }
            arrived = stamp.or(arrived);
            self.buffer
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(status) = complete(&self.buffer)? {
                return Ok(Answer {
                    status,
                    sent,
                    arrived,
                });
            }
        }
    }
}

/// The status of the response in `buffer` once it is whole (its head, then Content-Length
/// bytes), `None` while more is to come.
fn complete(buffer: &[u8]) -> Result<Option<u16>, LabError> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(buffer.get(..end).unwrap_or_default());
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            LabError::BadResponse(format!(
                "status line {:?}",
                head.lines().next().unwrap_or_default()
            ))
        })?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        })
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Ok((buffer.len() >= end + 4 + length).then_some(status))
}

/// One non-blocking `recvmsg`: the bytes read and the kernel's receive time-stamp of the last
/// of them.
fn receive(
    stream: &tokio::net::TcpStream,
    chunk: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut space = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut iov = [std::io::IoSliceMut::new(chunk)];
    let message = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(t) => {
                let secs = u64::try_from(t.tv_sec()).ok()?;
                let nanos = u32::try_from(t.tv_nsec()).ok()?;
                Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
            }
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_with_its_whole_body() {
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let head = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(complete(head).unwrap(), None);
        assert_eq!(complete(&[&head[..], b"{}"].concat()).unwrap(), Some(403));
        assert_eq!(
            complete(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            Some(204)
        );
        assert!(matches!(
            complete(b"garbage\r\n\r\n"),
            Err(LabError::BadResponse(_))
        ));
    }

    #[tokio::test]
    async fn an_answer_carries_its_status_and_times() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let mut read = 0;
            while !request[..read].ends_with(b"{}") {
                read += socket.read(&mut request[read..]).await.unwrap();
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .await
                .unwrap();
            let _ = socket.read(&mut request).await;
        });
        let mut connection = Connection::open(address).await.unwrap();
        let before = SystemTime::now();
        let answer = connection.post("/x", "{}").await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer.sent >= before);
        if let Some(arrived) = answer.arrived {
            assert!(arrived >= before);
        }
    }
}
