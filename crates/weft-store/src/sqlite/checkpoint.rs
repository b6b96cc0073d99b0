//! Checkpoints on a thread of their own.
//!
//! A checkpoint copies the write-ahead log into the database file between two fsyncs (of the
//! log, then of the file). Run by the writer right after a commit, as SQLite's automatic
//! checkpoint does, those fsyncs stalled every write behind them: a 100,000-item map on ext4
//! took 11.4–12.3 s, and 7.3–7.6 s with the fsyncs left out. Here the writer only wakes a
//! thread that checkpoints on its own connection while commits go on.
//!
//! Durability is unchanged: with `synchronous = NORMAL` a commit is durable once a checkpoint
//! has synced the log, whichever thread runs it. If the thread falls behind (a slow disk, a
//! reader that keeps old frames in use), the writer checkpoints itself past a higher mark, so
//! the log stays bounded.

use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

/// When a checkpoint is due, in frames (pages) of the log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalLimits {
    /// From this length on, the checkpoint thread is woken, and again after each quarter of
    /// this many frames more. Far above SQLite's default of 1,000: the hot pages (the right
    /// edge of each index) are then copied once per many commits instead of once per few.
    pub(crate) background: c_int,
    /// From this length on, the writer checkpoints itself.
    pub(crate) inline: c_int,
}

impl Default for WalLimits {
    fn default() -> Self {
        Self {
            background: 10_000,
            inline: 20_000,
        }
    }
}

/// Makes the writer `connection` leave checkpoints to a thread, started at the first one
/// due, with its own connection to `path`. (This replaces SQLite's automatic checkpoint on
/// that connection.)
pub(crate) fn hand_off(
    connection: &mut Connection,
    path: PathBuf,
    flags: OpenFlags,
    limits: WalLimits,
) -> rusqlite::Result<()> {
    // Not started yet (`None`), or started, or found impossible to start (`Some(None)`).
    let mut thread: Option<Option<Thread>> = None;
    // The log's length at which the thread is woken next: each wake copies at least
    // `background / 4` new frames, not the few of one commit for two fsyncs.
    let mut next_wake = limits.background;
    let mut last = 0;
    connection.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
        if frames < last {
            // The log restarted.
            next_wake = limits.background;
        }
        last = frames;
        if frames >= limits.inline {
            checkpoint_here(wal);
        } else if frames >= next_wake {
            let woken = thread
                .get_or_insert_with(|| Thread::start(path.clone(), flags))
                .as_ref()
                .is_some_and(Thread::wake);
            if woken {
                next_wake = frames + limits.background / 4;
            } else {
                checkpoint_here(wal);
            }
        }
        Ok(())
    }))
}

/// The writer's own checkpoint, after its commit. It waits for one of the thread's to end:
/// the log restarts only at a write that finds all of it copied, which the thread's
/// checkpoints, overtaken by commits, seldom leave behind.
fn checkpoint_here(wal: &mut Wal) {
    let deadline = std::time::Instant::now() + INLINE_WAIT;
    loop {
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // An error here would make the commit that just succeeded report a failure;
            // SQLite's own automatic checkpoint ignores it too. The next commit tries again.
            _ => return,
        }
    }
}

/// How long the writer waits for the thread's checkpoint to end before going on without
/// its own: longer than a checkpoint takes, short enough that a stuck one does not stall
/// writes for long.
const INLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The checkpoint thread. Dropping it lets a checkpoint under way finish, then ends the
/// thread and closes its connection.
struct Thread {
    wake: Option<SyncSender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Thread {
    /// `None` if no thread can be started (the writer then checkpoints itself).
    fn start(path: PathBuf, flags: OpenFlags) -> Option<Self> {
        // One pending wake is enough: a checkpoint copies whatever the log holds by then.
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("weft-sqlite-checkpoint".into())
            .spawn(move || checkpoint_when_woken(&path, flags, &woken))
            .ok()?;
        Some(Self {
            wake: Some(wake),
            handle: Some(handle),
        })
    }

    /// Whether the thread is there to take the checkpoint.
    fn wake(&self) -> bool {
        let Some(wake) = &self.wake else {
            return false;
        };
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => true,
            Err(TrySendError::Disconnected(())) => false,
        }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn checkpoint_when_woken(path: &std::path::Path, flags: OpenFlags, woken: &Receiver<()>) {
    let mut connection = None;
    while woken.recv().is_ok() {
        if connection.is_none() {
            // Opened at the first checkpoint, off the writer's path. If it cannot be, the
            // thread ends and the writer checkpoints itself from then on.
            match super::connect(path, flags) {
                Ok(opened) => connection = Some(opened),
                Err(_) => return,
            }
        }
        if let Some(connection) = &connection {
            // Passive: copies what no reader still needs, never waits for the writer. What
            // it cannot copy yet is left to the next wake.
            let _ = connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// A store file in WAL mode whose writer hands its checkpoints off under `limits`.
    fn writer(folder: &std::path::Path, limits: WalLimits) -> (Connection, PathBuf) {
        let path = folder.join("store.db");
        let mut connection = super::super::connect(&path, OpenFlags::default()).unwrap();
        super::super::use_wal(&connection).unwrap();
        hand_off(&mut connection, path.clone(), OpenFlags::default(), limits).unwrap();
        connection
            .execute_batch("CREATE TABLE filler (bytes BLOB NOT NULL)")
            .unwrap();
        (connection, path)
    }

    /// Commits `pages` rows of about a page each.
    fn commit(connection: &mut Connection, pages: usize) {
        let tx = connection.transaction().unwrap();
        for _ in 0..pages {
            tx.execute(
                "INSERT INTO filler VALUES (randomblob(?1))",
                [(PAGE - 200) as i64],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    /// The rows `connection` sees.
    fn rows(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT count(*) FROM filler", [], |row| row.get(0))
            .unwrap()
    }

    /// The rows committed, as a new connection reads them once the writer is closed.
    fn rows_in(path: &std::path::Path) -> i64 {
        rows(&Connection::open(path).unwrap())
    }

    /// Marks low enough that a test crosses both in a few hundred pages.
    const SMALL: WalLimits = WalLimits {
        background: 20,
        inline: 200,
    };

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map_or(0, |file| file.len())
    }

    fn wal(path: &std::path::Path) -> PathBuf {
        PathBuf::from(format!("{}-wal", path.display()))
    }

    #[test]
    fn the_log_is_copied_into_the_file_by_the_thread_not_the_writer() {
        let folder = tempfile::tempdir().unwrap();
        // The writer's own mark is out of reach: only the thread can checkpoint.
        let limits = WalLimits {
            background: 40,
            inline: c_int::MAX,
        };
        let (mut connection, path) = writer(folder.path(), limits);
        let before = size(&path);
        for _ in 0..10 {
            commit(&mut connection, 10);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while size(&path) < before + 60 * PAGE as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was copied into the file: {} bytes, {} in the log",
                size(&path),
                size(&wal(&path))
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(connection);
        assert_eq!(rows_in(&path), 100);
    }

    #[test]
    fn a_reader_holding_an_old_snapshot_does_not_stall_the_writer() {
        let folder = tempfile::tempdir().unwrap();
        let limits = SMALL;
        let (mut connection, path) = writer(folder.path(), limits);
        commit(&mut connection, 1);
        // An open read transaction keeps every frame after its snapshot in the log: no
        // checkpoint can copy them, and none may wait for it.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen = rows(&reader);
        let started = std::time::Instant::now();
        for _ in 0..100 {
            commit(&mut connection, 10);
        }
        // Waiting for each checkpoint in vain would take 2 s a commit past `inline`.
        assert!(
            started.elapsed() < INLINE_WAIT * 10,
            "1,000 pages took {:?} to commit beside a reader",
            started.elapsed()
        );
        assert!(size(&wal(&path)) > (limits.inline as u64) * PAGE as u64);
        let still = rows(&reader);
        assert_eq!((seen, still), (1, 1), "the reader keeps its snapshot");
        drop(reader);
        drop(connection);
        assert_eq!(rows_in(&path), 1001);
    }

    #[test]
    fn the_log_stays_bounded_while_commits_go_on() {
        let folder = tempfile::tempdir().unwrap();
        let limits = SMALL;
        let (mut connection, path) = writer(folder.path(), limits);
        let mut largest = 0;
        for _ in 0..300 {
            commit(&mut connection, 10);
            largest = largest.max(size(&wal(&path)));
        }
        // The log restarts once a checkpoint has copied all of it; at worst the writer's own
        // checkpoint at `inline` frames does that, a commit or two later.
        let frame = (PAGE + 24) as u64;
        let bound = (limits.inline as u64 + 3 * 20) * frame + 32;
        assert!(
            largest <= bound,
            "the log grew to {largest} bytes, more than {bound}, over 3,000 pages written"
        );
        drop(connection);
        assert_eq!(rows_in(&path), 3000);
    }
}
