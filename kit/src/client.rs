//! An HTTP client of the service, and its answers.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

/// A client of one running service. Cloning it is cheap and the clones share connections.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// What the service answered, nothing parsed: for the benches, which time the request alone.
#[derive(Clone, Debug)]
pub struct Raw {
    pub status: u16,
    /// Each header as (lower-case name, value), in the order received.
    pub headers: Vec<(String, String)>,
    pub bytes: Vec<u8>,
}

/// What the service answered, read for a test: the status, the headers, the body as text and
/// as JSON (`Null` when it is not JSON).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// Each header as (lower-case name, value), in the order received.
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl Client {
    /// A client that opens a fresh connection for every request, as a new caller would (no
    /// connection outlives its request, so a test sees each one counted and closed).
    pub fn new(address: SocketAddr) -> Client {
        Client::built(
            address,
            reqwest::Client::builder().pool_max_idle_per_host(0),
        )
    }

    /// [`Client::new`] that gives up on a request after `timeout` (connecting included).
    pub fn with_timeout(address: SocketAddr, timeout: Duration) -> Client {
        Client::built(
            address,
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(timeout),
        )
    }

    fn built(address: SocketAddr, builder: reqwest::ClientBuilder) -> Client {
        let http = builder
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS settings builds");
        Client {
            http,
            base: format!("http://{address}"),
        }
    }

    /// A request with these headers (the client adds `Host` and `Content-Length`). Fails when
    /// nothing answered: no listener, the connection cut, or the timeout.
    pub async fn fetch(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Raw, reqwest::Error> {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut map = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                HeaderValue::from_str(value).expect("a header value a client can send"),
            );
        }
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(map)
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let bytes = response.bytes().await?.to_vec();
        Ok(Raw {
            status,
            headers,
            bytes,
        })
    }

    /// [`Client::fetch`], read for a test.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, reqwest::Error> {
        Ok(self.fetch(method, path, headers, body).await?.into())
    }
}

impl Raw {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The values of every header named `name` (lower case).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        header_values(&self.headers, name)
    }
}

impl From<Raw> for Answer {
    fn from(raw: Raw) -> Answer {
        let text = raw.text();
        Answer {
            status: raw.status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers: raw.headers,
        }
    }
}

impl Answer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The values of every header named `name` (lower case).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        header_values(&self.headers, name)
    }

    /// An answer read off a socket by a test that wrote the request itself: the status line,
    /// the headers and the body (a chunked one put together). Anything that is not an HTTP/1.1
    /// answer, such as nothing at all from a refused connection, is status 0.
    pub fn from_http(raw: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            })
            .collect();
        let chunked = header_values(&headers, "transfer-encoding")
            .any(|value| value.eq_ignore_ascii_case("chunked"));
        let text = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers,
        }
    }
}

fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(header, _)| header == name)
        .map(|(_, value)| value.as_str())
}

/// A chunked body put together (as far as it goes: a cut-off one gives what arrived).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_off_a_socket_has_its_status_headers_and_body() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nRetry-After: 1\r\n\r\n{\"error\":\"busy\"}";
        let answer = Answer::from_http(raw);
        assert_eq!(answer.status, 429);
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.header("Content-Type"), Some("application/json"));
        assert_eq!(answer.body["error"], "busy");
    }

    #[test]
    fn a_chunked_answer_off_a_socket_is_put_together() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        let answer = Answer::from_http(raw);
        assert_eq!(answer.text, "{\"a\":1}");
        assert_eq!(answer.body["a"], 1);
    }

    #[test]
    fn nothing_off_a_refused_socket_is_status_0() {
        let answer = Answer::from_http(b"");
        assert_eq!((answer.status, answer.body.clone()), (0, Value::Null));
        assert!(answer.headers.is_empty());
    }
}
