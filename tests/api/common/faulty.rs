//! Receivers that misbehave at the TCP level, for the faults a real endpoint shows:
//! stalling, resetting, answering garbage, dripping, flooding, hanging up, oversized headers.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the server misbehaves on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads the request, never answers (until the test ends, 60 s at most).
    Stall,
    /// Reads the request, then resets the connection (RST).
    Reset,
    /// Answers a line of text that is not HTTP.
    Garbage,
    /// Answers random bytes.
    Binary,
    /// Answers a valid response one byte every 300 ms.
    Drip,
    /// Answers 200 with a 1 GiB body (sends until the client hangs up, 256 MiB at most).
    HugeBody,
    /// Reads the request and closes without a word.
    HangUp,
    /// Answers 200 with 64 KiB of headers.
    HugeHeader,
    /// Answers the connection's first request 200 and keeps it open; reads the next
    /// request on it and closes without a word (a keep-alive timeout running out just
    /// as a request comes).
    HangUpOnReuse,
}

/// A misbehaving server on an ephemeral loopback port.
pub struct FaultyServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyServer {
    /// Starts a server with this fault.
    pub fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, connections) = (Arc::clone(&stop), Arc::clone(&connections));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections.fetch_add(1, Ordering::Relaxed);
                            let stop = Arc::clone(&stop);
                            std::thread::spawn(move || misbehave(stream, fault, &stop));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self { addr, connections, stop, thread: Some(thread) }
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a request's head and as much body as arrives promptly.
fn read_request(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 64 * 1024];
    let mut seen = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if seen.len() >= end + 4 + length {
                        break;
                    }
                }
            }
        }
    }
}

fn misbehave(mut stream: TcpStream, fault: Fault, stop: &AtomicBool) {
    read_request(&mut stream);
    match fault {
        Fault::Stall => {
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fault::Reset => {
            use std::os::fd::AsRawFd;
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: setsockopt on our own open socket with a correctly sized struct.
            unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
        Fault::Garbage => {
            let _ = stream.write_all(b"this is not an HTTP response at all\r\n\r\n");
        }
        Fault::Binary => {
            let noise: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
            let _ = stream.write_all(&noise);
        }
        Fault::Drip => {
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" {
                if stop.load(Ordering::Relaxed) || stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        Fault::HugeBody => {
            let _ =
                stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1073741824\r\n\r\n");
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..256 {
                if stream.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
        Fault::HangUp => {}
        Fault::HangUpOnReuse => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                return;
            }
            stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                match stream.peek(&mut [0u8; 1]) {
                    Ok(0) => return,
                    Ok(_) => {
                        read_request(&mut stream);
                        return;
                    }
                    Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
        }
        Fault::HugeHeader => {
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
            for n in 0..64 {
                head.push_str(&format!("X-Padding-{n}: {}\r\n", "p".repeat(1000)));
            }
            head.push_str("\r\nok");
            let _ = stream.write_all(head.as_bytes());
        }
    }
}
