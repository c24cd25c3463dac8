//! Large bodies in sealed memory files, so that hits can be sent with
//! `sendfile` instead of being copied into the socket.
//!
//! A body of at least [`THRESHOLD`] bytes is written once into a `memfd`,
//! sealed against any change (no write, no resize), and mapped read-only; the
//! mapping becomes the body's `Bytes`, so everything else (HTTP/2, ranges,
//! revalidation) sees ordinary bytes. The file is registered by the address
//! of its mapping: when the HTTP/1 connection writer is handed a slice that
//! lies inside a registered mapping ([`find`]), it asks the kernel to send
//! those pages from the file directly (see `crate::server::io`), saving the
//! copy that dominates the cost of serving large hits. The kernel keeps its
//! own references to pages in flight, and the seals guarantee that they never
//! change, so dropping the entry while a send is in flight is safe.
//!
//! Any failure (no memfd support, out of file descriptors) keeps the body
//! as it was: this is an optimisation, never a condition for caching.
//!
//! Each sealed body holds a file descriptor for as long as it is stored, and
//! descriptors are what sockets need too: bodies are sealed only within a
//! budget ([`set_descriptor_budget`], from [`descriptor_budget`]) that leaves
//! room for every client connection and its origin connection, so that the
//! cache never costs a client its connection. Past the budget, bodies stay
//! in ordinary memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use parking_lot::RwLock;

/// Bodies at least this large are sealed; below it the copy costs less
/// than a file descriptor and a mapping.
pub const THRESHOLD: usize = 32 * 1024;

/// Descriptors kept for everything but sealed bodies and client
/// connections: listeners, admin, etcd, logs, health checks.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Sealed bodies allowed at once (unlimited until the daemon sets it).
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Sealed bodies alive (each holds one descriptor).
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many descriptors sealed bodies may hold under an open files limit of
/// `open_files`, with up to `max_connections` client connections: what is
/// left after those and a reserve, and never more than half the limit, so
/// that the other half is there for connections to origins and peers.
pub fn descriptor_budget(open_files: u64, max_connections: usize) -> usize {
    let sockets = (max_connections as u64).saturating_add(RESERVED_DESCRIPTORS);
    let left = open_files.saturating_sub(sockets).min(open_files / 2);
    usize::try_from(left).unwrap_or(usize::MAX)
}

/// Sealed bodies the edge asks room for when it raises its open files limit.
const SEALED_BODIES_WANTED: u64 = 65_536;

/// The open files limit that leaves room for `max_connections` client
/// connections, as many to origins, and a generous number of sealed bodies.
pub fn descriptors_wanted(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(RESERVED_DESCRIPTORS)
        .saturating_add(SEALED_BODIES_WANTED)
}

/// Sets how many sealed bodies may exist at once.
pub fn set_descriptor_budget(budget: usize) {
    BUDGET.store(budget, Ordering::Relaxed);
}

/// Sealed bodies alive, each holding a descriptor.
pub fn open_count() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// Takes one descriptor from the budget, or `false` when none is left.
fn take_descriptor() -> bool {
    let budget = BUDGET.load(Ordering::Relaxed);
    OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
        (open < budget).then_some(open + 1)
    })
    .is_ok()
}

fn give_back_descriptor() {
    OPEN.fetch_sub(1, Ordering::AcqRel);
}

/// A sealed file and its read-only mapping; unregistered when dropped.
struct SealedBody {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for SealedBody {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for SealedBody {
    fn drop(&mut self) {
        REGISTRY.write().remove(&(self.map.as_ptr() as usize));
        give_back_descriptor();
    }
}

/// A mapping's length and file.
type Mapping = (usize, Arc<File>);

/// Mappings by start address.
static REGISTRY: LazyLock<RwLock<BTreeMap<usize, Mapping>>> =
    LazyLock::new(|| RwLock::new(BTreeMap::new()));

/// `body` moved into a sealed memory file when it is large enough and the
/// system allows; otherwise `body` itself.
pub fn seal(body: Bytes) -> Bytes {
    if body.len() < THRESHOLD || !take_descriptor() {
        return body;
    }
    match sealed_copy(&body) {
        Ok(sealed) => sealed,
        Err(error) => {
            give_back_descriptor();
            tracing::debug!(%error, "body kept in memory: cannot seal it in a memfd");
            body
        }
    }
}

/// Like [`seal`]; bodies of a mebibyte and more are copied on the blocking
/// pool so that the copy does not hold up other requests on this worker.
pub async fn seal_off_thread(body: Bytes) -> Bytes {
    if body.len() < 1024 * 1024 {
        return seal(body);
    }
    let copy = body.clone();
    tokio::task::spawn_blocking(move || seal(copy))
        .await
        .unwrap_or(body)
}

fn sealed_copy(body: &[u8]) -> std::io::Result<Bytes> {
    let fd: OwnedFd = memfd_create(
        c"edge-body",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut file = File::from(fd);
    file.write_all(body)?;
    fcntl(
        file.as_fd(),
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    let map = map_sealed(&file)?;
    REGISTRY
        .write()
        .insert(map.as_ptr() as usize, (map.len(), Arc::new(file)));
    Ok(Bytes::from_owner(SealedBody { map }))
}

/// Maps a sealed file read-only.
#[allow(unsafe_code)]
fn map_sealed(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour only if the file changes
    // under it. This memfd is sealed against writes, shrinking and growing
    // (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW, and F_SEAL_SEAL so the
    // seals cannot be lifted), and no other process has it: its contents
    // are fixed for the life of the mapping.
    unsafe { memmap2::Mmap::map(file) }
}

/// If `slice` lies inside a sealed body: the file and the slice's offset in it.
pub fn find(slice: &[u8]) -> Option<(Arc<File>, u64)> {
    let start = slice.as_ptr() as usize;
    let registry = REGISTRY.read();
    let (&base, (length, file)) = registry.range(..=start).next_back()?;
    let end = start.checked_add(slice.len())?;
    (end <= base + length).then(|| (file.clone(), (start - base) as u64))
}

/// Whether any sealed body exists (the writer can skip lookups when none does).
pub fn any() -> bool {
    !REGISTRY.read().is_empty()
}

/// The descriptor of a file returned by [`find`].
pub fn descriptor(file: &File) -> BorrowedFd<'_> {
    file.as_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_sealed_and_found() {
        let body: Bytes = (0..100_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let sealed = seal(body.clone());
        assert_eq!(sealed, body, "same bytes");
        let middle = sealed.slice(1000..2000);
        let (file, offset) = find(&middle).expect("registered");
        assert_eq!(offset, 1000);
        let mut copy = vec![0u8; 1000];
        nix::sys::uio::pread(descriptor(&file), &mut copy, 1000).unwrap();
        assert_eq!(copy, &body[1000..2000]);
        assert!(find(&body).is_none(), "the original is not a sealed body");
        let address = sealed.as_ptr() as usize;
        drop(middle);
        drop(sealed);
        assert!(
            !REGISTRY.read().contains_key(&address),
            "unregistered when dropped"
        );
    }

    #[test]
    fn the_budget_leaves_room_for_connections() {
        assert_eq!(descriptor_budget(1024, 10_000), 0);
        assert_eq!(descriptor_budget(1024, 512), 1024 - 512 - 128);
        assert_eq!(descriptor_budget(1024, 10), 512);
        assert_eq!(descriptor_budget(20_000, 10_000), 20_000 - 10_000 - 128);
        assert_eq!(descriptor_budget(524_288, 10_000), 262_144);
    }

    #[test]
    fn small_bodies_stay_as_they_are() {
        let body = Bytes::from_static(b"small");
        assert!(find(&seal(body)).is_none());
    }

    #[test]
    fn sealed_files_cannot_change() {
        let sealed = seal(Bytes::from(vec![7u8; THRESHOLD]));
        let (file, _) = find(&sealed).unwrap();
        assert!(nix::sys::uio::pwrite(descriptor(&file), b"x", 0).is_err());
        assert!(file.set_len(1).is_err());
    }
}
