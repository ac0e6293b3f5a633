//! One keep-alive HTTP/1.1 connection, for the benches.

use std::io::{self, Write as _};
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Raw;

/// The largest answer a [`Connection`] reads: the read bench's largest pages (the trial
/// balance, the event feed at 1M events) are tens of MB; a bound still, so a runaway answer
/// fails instead of swapping.
pub const MAX_ANSWER_BYTES: usize = 256 << 20;

/// One open connection to the service, one request at a time: what a bench sends and times,
/// with as little of the client's own work in the time as HTTP/1.1 allows (one write per
/// request, the answer read in place; Nagle off). Through reqwest, and through hyper's own
/// client, the SQLite lifecycle bench measured 5-15% and about 6% fewer commands per second
/// (bench/README.md), so the benches use this; tests use [`crate::Client`].
pub struct Connection {
    stream: TcpStream,
    host: String,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `address`.
    pub async fn open(address: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            host: address.to_string(),
            buffer: Vec::with_capacity(8 * 1024),
        })
    }

    /// A request with these headers (besides `Host` and `Content-Length`). Fails when the
    /// connection is closed or cut, or the answer is not HTTP/1.1; the connection is not
    /// usable after that.
    pub async fn fetch(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Raw> {
        let mut request = Vec::with_capacity(256 + body.len());
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        )?;
        for (name, value) in headers {
            write!(request, "{name}: {value}\r\n")?;
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        self.stream.write_all(&request).await?;
        self.read_answer().await
    }

    /// A JSON request (`Content-Type: application/json`), with the bearer token when given.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> io::Result<Raw> {
        let authorization = token.map(|token| format!("Bearer {token}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization));
        }
        self.fetch(method, path, &headers, body).await
    }

    async fn read_answer(&mut self) -> io::Result<Raw> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end]).map_err(invalid)?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("no status code in the answer"))?;
        let mut content_length = 0;
        let mut chunked = false;
        let mut headers = Vec::new();
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                content_length = value.parse().map_err(invalid)?;
            } else if name == "transfer-encoding" {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
            headers.push((name, value.to_owned()));
        }
        self.buffer.drain(..head_end);
        let bytes = if chunked {
            self.read_chunked().await?
        } else {
            if content_length > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            while self.buffer.len() < content_length {
                self.fill().await?;
            }
            self.buffer.drain(..content_length).collect()
        };
        Ok(Raw {
            status,
            headers,
            bytes,
        })
    }

    async fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer, b"\r\n") {
                    break end;
                }
                self.fill().await?;
            };
            let size = std::str::from_utf8(&self.buffer[..line_end]).map_err(invalid)?;
            let size = size.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(invalid)?;
            self.buffer.drain(..line_end + 2);
            if body.len() + size > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            while self.buffer.len() < size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buffer[..size]);
            self.buffer.drain(..size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8 * 1024];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if self.buffer.len() + read > MAX_ANSWER_BYTES + 64 * 1024 {
            return Err(too_large());
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

fn too_large() -> io::Error {
    invalid(format!(
        "an answer larger than {MAX_ANSWER_BYTES} bytes, the most a bench reads"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that reads two requests on one connection and answers the first with a
    /// length, the second chunked.
    async fn two_answers() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 201 Created\r\nContent-Length: 8\r\nX-Seen: a\r\n\r\n{\"a\":1}\n",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n",
            ];
            let mut read = Vec::new();
            for answer in answers {
                while !read.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    let n = socket.read(&mut chunk).await.unwrap();
                    read.extend_from_slice(&chunk[..n]);
                }
                let end = read.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let head = String::from_utf8_lossy(&read[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Content-Length: "))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                while read.len() < end + length {
                    let mut chunk = [0u8; 1024];
                    let n = socket.read(&mut chunk).await.unwrap();
                    read.extend_from_slice(&chunk[..n]);
                }
                read.drain(..end + length);
                socket.write_all(answer).await.unwrap();
            }
        });
        address
    }

    #[tokio::test]
    async fn one_connection_reads_a_sized_and_a_chunked_answer_in_turn() {
        let mut connection = Connection::open(two_answers().await).await.unwrap();
        let first = connection
            .send("POST", "/api/leads", Some("t"), b"{}")
            .await
            .unwrap();
        assert_eq!(first.status, 201);
        assert_eq!(first.json().unwrap()["a"], 1);
        assert_eq!(first.header_values("x-seen").collect::<Vec<_>>(), ["a"]);
        let second = connection.fetch("GET", "/", &[], b"").await.unwrap();
        assert_eq!((second.status, second.text()), (200, "[1,2]".to_owned()));
        // The server has closed: an error, whether the close or its reset is seen first.
        let closed = connection.fetch("GET", "/", &[], b"").await.unwrap_err();
        assert!(
            matches!(
                closed.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
            ),
            "{closed:?}"
        );
    }
}
