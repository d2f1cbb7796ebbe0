//! A backend's connection to the service: one Unix socket per backend, kept between calls.
//!
//! Every wait is on the backend's latch together with the socket, so a waiting call sleeps
//! (wait event `Extension` in `pg_stat_activity`), and answers cancel and `statement_timeout`
//! at once: the error unwinds through here, the connection is dropped, and the service sees
//! the hang-up and drops the request.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgrx::{pg_sys, PgSqlErrorCode};

use biomed_ner_host::protocol::{read_frame, write_frame, Request, Response};
use super::SOCKET;
use crate::error::raise;

/// How long a call waits for the service's socket to appear (the server is starting).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

static CONNECTION: Mutex<Option<UnixStream>> = Mutex::new(None);

pub const LOST_HINT: &str =
    "The inference service restarts by itself within seconds: retry the statement. The server log says why it stopped.";

/// Sleeps on the latch until `events` on `fd` (or `timeout_ms`, -1 for none), processing
/// interrupts: a cancel raises here.
fn wait(fd: i32, events: u32, timeout_ms: i64) {
    let mut flags = pg_sys::WL_LATCH_SET | pg_sys::WL_EXIT_ON_PM_DEATH | events;
    if timeout_ms >= 0 {
        flags |= pg_sys::WL_TIMEOUT;
    }
    // Safety: the backend's own latch; PostgreSQL's documented wait loop.
    unsafe {
        let rc = if fd >= 0 {
            pg_sys::WaitLatchOrSocket(pg_sys::MyLatch, flags as i32, fd, timeout_ms as _, pg_sys::PG_WAIT_EXTENSION)
        } else {
            pg_sys::WaitLatch(pg_sys::MyLatch, flags as i32, timeout_ms as _, pg_sys::PG_WAIT_EXTENSION)
        };
        if rc & pg_sys::WL_LATCH_SET as i32 != 0 {
            pg_sys::ResetLatch(pg_sys::MyLatch);
        }
    }
    pgrx::check_for_interrupts!();
}

/// A non-blocking stream whose reads and writes wait on the latch.
struct Waiting<'a>(&'a mut UnixStream);

impl Read for Waiting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.0.as_raw_fd(), pg_sys::WL_SOCKET_READABLE, -1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Write for Waiting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.0.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait(self.0.as_raw_fd(), pg_sys::WL_SOCKET_WRITEABLE, -1),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn unavailable(why: String, function: &'static str) -> ! {
    raise(PgSqlErrorCode::ERRCODE_SYSTEM_ERROR, format!("biomed_ner inference service is not available: {why}"), LOST_HINT, function)
}

fn connect(function: &'static str) -> UnixStream {
    let deadline = Instant::now() + CONNECT_WAIT;
    loop {
        match UnixStream::connect(SOCKET) {
            Ok(s) => {
                s.set_nonblocking(true).unwrap_or_else(|e| unavailable(e.to_string(), function));
                return s;
            }
            // The supervisor is starting (or restarting): wait for its socket.
            Err(e) if Instant::now() < deadline && matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
                wait(-1, 0, 50)
            }
            Err(e) => unavailable(format!("cannot connect to {SOCKET}: {e}"), function),
        }
    }
}

/// Sends `request` and waits for the answer. A connection kept from an earlier call that the
/// service closed meanwhile (it restarted) is replaced once, before anything was sent; a
/// connection lost while a request is in the service raises 58000.
pub fn call(request: &Request, function: &'static str) -> Response {
    let cached = CONNECTION.lock().unwrap_or_else(|e| e.into_inner()).take();
    let fresh = cached.is_none();
    let mut stream = cached.unwrap_or_else(|| connect(function));
    if let Err(e) = write_frame(&mut Waiting(&mut stream), request) {
        if fresh {
            unavailable(format!("cannot send a request: {e}"), function);
        }
        stream = connect(function);
        write_frame(&mut Waiting(&mut stream), request).unwrap_or_else(|e| unavailable(format!("cannot send a request: {e}"), function));
    }
    let response = match read_frame::<Response>(&mut Waiting(&mut stream)) {
        Ok(Some(r)) => r,
        Ok(None) => raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            "biomed_ner inference service stopped while it served this call",
            LOST_HINT,
            function,
        ),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
            format!("biomed_ner inference service connection failed: {e}"),
            LOST_HINT,
            function,
        ),
    };
    *CONNECTION.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream);
    response
}
