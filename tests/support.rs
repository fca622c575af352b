//! What several test modules share.

use std::io::{Read, Write};
use std::process::Child;
use std::time::Duration;

/// The seeded generator the demo, the tests and the benches share.
pub use modelwatch::demo::Rng;

/// A child process (a server, a tool) killed and reaped when the test ends, passed or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free on loopback now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One plain HTTP/1.0 request on loopback (the connection closes after the answer):
/// status and body. `headers` are extra header lines, each ending in CRLF; a body goes
/// with its length as JSON.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
    };
    write!(s, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}{length}\r\n{body}")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, text.split_once("\r\n\r\n").map(|b| b.1.to_string()).unwrap_or_default()))
}
