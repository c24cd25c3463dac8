//! Upgrades without a refused connection: a new process takes the listening
//! sockets of the running one over a unix socket, then the old one drains.
//!
//! Every TCP listener of the process is bound through [`bind_tcp`], which,
//! once [`keep_for_handover`] is called, keeps a duplicate of its descriptor. The running process offers them on
//! its handover socket ([`offer`]). A new process started with the same
//! configuration connects first ([`take`]), receives every descriptor with
//! its address (`SCM_RIGHTS`), binds nothing it was given, and once it
//! serves tells the old process, which then stops accepting and finishes
//! its connections. Both processes hold the same listening sockets until
//! then, so a connection waiting in the accept queue is accepted by one of
//! them and never reset: the kernel keeps one queue per socket, not per
//! process (as with nginx's binary upgrade or HAProxy's `-x`).
//!
//! The socket is created with mode 0600: only the service's own user (and
//! root) can take its listeners.

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Most listeners one process hands over.
const MAX_LISTENERS: usize = 64;
/// How long the old process waits for the new one to say it serves.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The line the new process sends once it serves.
const READY: &[u8] = b"ready\n";

/// Whether [`bind_tcp`] keeps duplicates to hand over ([`keep_for_handover`]).
static KEEPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Listeners this process serves on (duplicates, kept to hand over).
static SERVING: Mutex<Vec<(SocketAddr, OwnedFd)>> = Mutex::new(Vec::new());
/// Listeners received from the previous process, not yet claimed.
static INHERITED: Mutex<Vec<(SocketAddr, std::net::TcpListener)>> = Mutex::new(Vec::new());

/// Errors of the handover.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The socket could not be used.
    #[error("handover socket {path}: {source}")]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The running process sent something else than listeners.
    #[error("handover socket {path}: {message}")]
    Protocol {
        /// The socket's path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// From now on, listeners bound through [`bind_tcp`] are kept for a
/// handover. Without it nothing is kept: a listener a server drops stops
/// listening at once.
pub fn keep_for_handover() {
    KEEPING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Closes the duplicates kept for a handover (once this process stops
/// accepting), so that the listeners close with the servers' own copies.
pub fn release() {
    KEEPING.store(false, std::sync::atomic::Ordering::Relaxed);
    SERVING.lock().clear();
}

/// The TCP listener for `address`: the one inherited from the previous
/// process when there is one, else a new one (with `SO_REUSEADDR`, as
/// tokio's bind sets). Non-blocking, for tokio.
pub fn bind_tcp(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let inherited = {
        let mut inherited = INHERITED.lock();
        inherited
            .iter()
            .position(|(bound, _)| *bound == address)
            .map(|index| inherited.swap_remove(index).1)
    };
    let listener = match inherited {
        Some(listener) => {
            tracing::info!(%address, "listening socket taken over from the previous process");
            listener
        }
        None => {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(address),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            if address.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&address.into())?;
            socket.listen(1024)?;
            socket.into()
        }
    };
    listener.set_nonblocking(true)?;
    if KEEPING.load(std::sync::atomic::Ordering::Relaxed) {
        let bound = listener.local_addr()?;
        SERVING.lock().push((bound, listener.try_clone()?.into()));
    }
    Ok(listener)
}

/// [`bind_tcp`] as a tokio listener.
pub fn bind_tokio(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::from_std(bind_tcp(address)?)
}

/// Listeners received from a running process; [`Taken::ready`] tells it
/// that this process serves.
#[derive(Debug)]
pub struct Taken {
    stream: UnixStream,
    path: PathBuf,
}

impl Taken {
    /// Tells the previous process to stop accepting and drain, and closes
    /// the inherited listeners no address of this process claimed.
    pub fn ready(mut self) -> Result<(), HandoverError> {
        let unclaimed: Vec<SocketAddr> = INHERITED
            .lock()
            .drain(..)
            .map(|(address, _)| address)
            .collect();
        if !unclaimed.is_empty() {
            tracing::warn!(
                addresses = ?unclaimed,
                "the previous process listened on addresses this configuration does not; closed"
            );
        }
        self.stream
            .write_all(READY)
            .map_err(|source| HandoverError::Socket {
                path: self.path.clone(),
                source,
            })
    }
}

/// Takes the listeners of the process serving on the handover socket at
/// `path`, if one does: `None` when there is no socket or nobody listens on
/// it (a stale file from a crash, which is removed).
pub fn take(path: &Path) -> Result<Option<Taken>, HandoverError> {
    let socket_error = |source| HandoverError::Socket {
        path: path.to_path_buf(),
        source,
    };
    let stream = match UnixStream::connect(path) {
        Ok(stream) => stream,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
            let _ = std::fs::remove_file(path);
            return Ok(None);
        }
        Err(error) => return Err(socket_error(error)),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(socket_error)?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut space = nix::cmsg_space!([RawFd; MAX_LISTENERS]);
    let (length, descriptors) = {
        let mut iov = [IoSliceMut::new(&mut buffer)];
        let message = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|errno| socket_error(errno.into()))?;
        let mut descriptors = Vec::new();
        for control in message
            .cmsgs()
            .map_err(|errno| socket_error(errno.into()))?
        {
            if let ControlMessageOwned::ScmRights(fds) = control {
                // SAFETY: the kernel just installed these descriptors in
                // this process for us; nothing else owns them.
                #[allow(unsafe_code)]
                descriptors.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        (message.bytes, descriptors)
    };
    let protocol = |message: String| HandoverError::Protocol {
        path: path.to_path_buf(),
        message,
    };
    let addresses: Vec<SocketAddr> = serde_json::from_slice(&buffer[..length])
        .map_err(|error| protocol(format!("not a list of addresses: {error}")))?;
    if addresses.len() != descriptors.len() {
        return Err(protocol(format!(
            "{} addresses for {} descriptors",
            addresses.len(),
            descriptors.len()
        )));
    }
    let mut inherited = INHERITED.lock();
    for (address, descriptor) in addresses.into_iter().zip(descriptors) {
        inherited.push((address, std::net::TcpListener::from(descriptor)));
    }
    tracing::info!(
        listeners = inherited.len(),
        socket = %path.display(),
        "taking over from the running process"
    );
    Ok(Some(Taken {
        stream,
        path: path.to_path_buf(),
    }))
}

/// Offers this process's listeners on a unix socket at `path` until
/// `shutdown`. When a new process has taken them and says it serves,
/// `taken_over` is cancelled: the caller then stops accepting and drains.
///
/// A stale socket file is replaced; the directory must exist.
pub fn offer(
    path: &Path,
    taken_over: CancellationToken,
    shutdown: CancellationToken,
) -> Result<(), HandoverError> {
    let socket_error = |source| HandoverError::Socket {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(socket_error(error)),
    }
    let listener = UnixListener::bind(path).map_err(socket_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(socket_error)?;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("handover".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if shutdown.is_cancelled() {
                    return;
                }
                let Ok(stream) = stream else { continue };
                match hand_over(&stream) {
                    Ok(()) => {
                        tracing::info!(
                            socket = %path.display(),
                            "a new process serves on our listeners: draining"
                        );
                        taken_over.cancel();
                        return;
                    }
                    Err(error) => tracing::warn!(
                        socket = %path.display(),
                        %error,
                        "handover did not complete; still serving"
                    ),
                }
            }
        })
        .map_err(socket_error)?;
    Ok(())
}

/// Sends every listener on `stream` and waits for the ready line.
fn hand_over(stream: &UnixStream) -> std::io::Result<()> {
    let (addresses, descriptors): (Vec<SocketAddr>, Vec<RawFd>) = SERVING
        .lock()
        .iter()
        .take(MAX_LISTENERS)
        .map(|(address, fd)| (*address, fd.as_raw_fd()))
        .unzip();
    let header = serde_json::to_vec(&addresses).map_err(std::io::Error::other)?;
    // The descriptors stay open in SERVING while they are sent.
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&header)],
        &[ControlMessage::ScmRights(&descriptors)],
        MsgFlags::empty(),
        None,
    )?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let mut line = Vec::new();
    BufReader::new(stream).read_until(b'\n', &mut line)?;
    if line == READY {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the new process went away before serving",
        ))
    }
}
