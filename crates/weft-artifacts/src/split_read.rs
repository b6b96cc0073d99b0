//! A large read from a local file, on every core.
//!
//! Reading into a fresh buffer costs the kernel more for the buffer's pages, each touched for
//! the first time by the copy that fills it, than for the copy itself: of the 110 ms one
//! `read` of 256 MiB takes from the page cache, 70 go to those first touches. They run side by
//! side on several threads, so threads reading pieces of the span at once share that cost
//! (65 ms for the same read on two cores). The hash cannot be split that way: it takes the
//! pieces in order, on whichever thread finds the next piece read and the hasher free.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Threads read pieces of this size: small enough that a piece is still in the cache when
/// it is hashed, and that the last one's hash, which no read overlaps, is short.
const PIECE: usize = 4 * 1024 * 1024;
/// More threads than this only contend for the same memory.
const MAX_THREADS: usize = 4;

/// Fills `out` from `file` at `offset`, feeding every byte read to `hasher` in order; returns
/// how much was read, less than `out` only where the file ends. On an error, what was read
/// before it may have been hashed.
pub(crate) fn read_hashed(
    file: &std::fs::File,
    offset: u64,
    out: &mut [u8],
    hasher: &mut blake3::Hasher,
) -> io::Result<usize> {
    let read = SplitRead {
        file,
        offset,
        pieces: out
            .chunks_mut(PIECE)
            .map(|piece| Mutex::new(Piece::Unread(piece)))
            .collect(),
        next: AtomicUsize::new(0),
        ended: AtomicBool::new(false),
        hashing: Mutex::new(Hashing {
            hasher,
            next: 0,
            filled: 0,
            end: None,
        }),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS)
        .min(read.pieces.len());
    std::thread::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|| read.work());
        }
        read.work();
    });
    let hashing = read.hashing.into_inner().expect("reading does not panic");
    match hashing.end {
        Some(Err(error)) => Err(error),
        _ => Ok(hashing.filled),
    }
}

/// One piece of the span, as it goes from one thread to another.
enum Piece<'b> {
    Unread(&'b mut [u8]),
    Reading,
    /// Read: the piece and how much of it the file filled.
    Read(&'b mut [u8], usize),
    Failed(io::Error),
    Hashed,
}

struct SplitRead<'f, 'b, 'h> {
    file: &'f std::fs::File,
    offset: u64,
    pieces: Vec<Mutex<Piece<'b>>>,
    /// The next piece no thread has claimed.
    next: AtomicUsize,
    /// A piece came back short or failed: the pieces after it do not count.
    ended: AtomicBool,
    hashing: Mutex<Hashing<'h>>,
}

struct Hashing<'h> {
    hasher: &'h mut blake3::Hasher,
    /// The next piece to hash.
    next: usize,
    /// Bytes hashed so far, all of them read.
    filled: usize,
    /// Set at the first piece that is short (`Ok`) or failed: nothing after it is hashed.
    end: Option<io::Result<()>>,
}

impl<'b> SplitRead<'_, 'b, '_> {
    fn work(&self) {
        loop {
            if let Ok(mut hashing) = self.hashing.try_lock() {
                self.hash_ready(&mut hashing);
            }
            if self.ended.load(Ordering::Relaxed) {
                break;
            }
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.pieces.len() {
                break;
            }
            self.read(index);
        }
        // The thread whose read completes last hashes what the others left: every thread
        // passes here after its last read.
        let mut hashing = self.hashing.lock().expect("hashing does not panic");
        self.hash_ready(&mut hashing);
    }

    fn slot(&self, index: usize) -> MutexGuard<'_, Piece<'b>> {
        self.pieces[index].lock().expect("reading does not panic")
    }

    fn read(&self, index: usize) {
        let Piece::Unread(piece) = std::mem::replace(&mut *self.slot(index), Piece::Reading) else {
            unreachable!("each piece is claimed once")
        };
        let offset = self.offset + (index * PIECE) as u64;
        let outcome = match read_full_at(self.file, piece, offset) {
            Ok(filled) => {
                if filled < piece.len() {
                    self.ended.store(true, Ordering::Relaxed);
                }
                Piece::Read(piece, filled)
            }
            Err(error) => {
                self.ended.store(true, Ordering::Relaxed);
                Piece::Failed(error)
            }
        };
        *self.slot(index) = outcome;
    }

    /// Hashes the pieces read, in order, up to the first one still being read.
    fn hash_ready(&self, hashing: &mut Hashing<'_>) {
        while hashing.end.is_none() && hashing.next < self.pieces.len() {
            let mut slot = self.slot(hashing.next);
            if matches!(*slot, Piece::Unread(_) | Piece::Reading) {
                return;
            }
            match std::mem::replace(&mut *slot, Piece::Hashed) {
                Piece::Read(piece, filled) => {
                    drop(slot);
                    hashing.hasher.update(&piece[..filled]);
                    hashing.filled += filled;
                    if filled < piece.len() {
                        hashing.end = Some(Ok(()));
                    }
                }
                Piece::Failed(error) => hashing.end = Some(Err(error)),
                _ => unreachable!("pieces are hashed once, after they are read"),
            }
            hashing.next += 1;
        }
    }
}

/// Reads at `offset` until `out` is full or the file ends; returns how much was read.
fn read_full_at(file: &std::fs::File, out: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match file.read_at(&mut out[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, std::fs::File) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        let opened = std::fs::File::open(file.path()).unwrap();
        (file, opened)
    }

    /// Every length around the piece size, from every offset: the bytes land where they
    /// belong and the hash is the hash of exactly what was read.
    #[test]
    fn reads_and_hashes_exactly_the_span() {
        let bytes: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8).collect();
        let (_kept, file) = file_of(&bytes);
        for (offset, length) in [
            (0, 3 * PIECE + 17),
            (5, 3 * PIECE),
            (0, PIECE),
            (PIECE - 1, PIECE + 2),
            (100, 1),
            (0, 0),
        ] {
            let mut out = vec![0u8; length];
            let mut hasher = blake3::Hasher::new();
            let filled = read_hashed(&file, offset as u64, &mut out, &mut hasher).unwrap();
            assert_eq!(filled, length.min(bytes.len() - offset));
            assert_eq!(out[..filled], bytes[offset..offset + filled]);
            assert_eq!(
                hasher.finalize(),
                blake3::hash(&bytes[offset..offset + filled])
            );
        }
    }

    /// A file shorter than the buffer: the read stops at its end, mid-piece or at a piece's
    /// border, and only what was read is hashed.
    #[test]
    fn a_short_file_ends_the_read() {
        for length in [2 * PIECE + 3, 2 * PIECE, 10] {
            let bytes: Vec<u8> = (0..length).map(|i| (i % 7) as u8).collect();
            let (_kept, file) = file_of(&bytes);
            let mut out = vec![0xAAu8; 4 * PIECE];
            let mut hasher = blake3::Hasher::new();
            let filled = read_hashed(&file, 0, &mut out, &mut hasher).unwrap();
            assert_eq!(filled, length);
            assert_eq!(out[..length], bytes[..]);
            assert_eq!(hasher.finalize(), blake3::hash(&bytes));
        }
    }

    /// A handle that cannot be read fails the read with the system's error.
    #[test]
    fn a_failing_read_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let write_only = std::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .unwrap();
        let mut out = vec![0u8; 2 * PIECE];
        let error = read_hashed(&write_only, 0, &mut out, &mut blake3::Hasher::new()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(9), "EBADF: {error}");
    }
}
