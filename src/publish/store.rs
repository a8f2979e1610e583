//! The on-disk half of the outbox: a redb database (crash-safe: copy-on-
//! write pages, fsync on every commit) holding each QoS 1 message from
//! before it is handed to the MQTT client until its PUBACK, and the last
//! event number of every camera, so that `seq` keeps counting across
//! restarts, and the outbox's epoch: a random id made when the file is
//! created. A lost or replaced file starts a new epoch (and `seq` again at
//! 1), so subscribers de-duplicate by (device, camera, epoch, seq).
//!
//! Writes are grouped: the publisher commits all messages that arrived
//! (and all acknowledgements) since its last turn in one transaction.
//!
//! A failed write (disk full, read-only, an I/O error) leaves the file as
//! it was at the last commit, and redb refuses every later transaction on
//! that handle; the next commit reopens the file, and the publisher then
//! writes its whole state again ([`Store::replace_all`]). While writes fail,
//! events are numbered that the file does not know of: before anything
//! else the store creates an empty marker file beside it (`…​.unsynced`, an
//! inode and no data block, so it can be made on a full disk). A store
//! opened with the marker present starts a new epoch: a daemon restarted
//! during a disk-full episode never repeats a `seq` within an epoch.
//!
//! A disk with no room at start (full, over quota, past the file-size
//! limit) does not stop the daemon: the store opens without its file, in a
//! new epoch, and the publisher keeps messages in memory, counting failed
//! writes, until the file can be written (then as after any failed write).

use super::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// id → encoded [`Stored`].
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// camera → last event number.
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("seq");
/// "epoch" → the id made when this file was created.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// A fresh epoch id: 16 hex digits from the OS-seeded hasher, the clock and
/// the process id (no two outbox files share one in practice).
fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    format!("{:016x}", h.finish())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("config key `outbox.path` = {path}: {problem}. Fix: {fix}")]
    Open {
        path: PathBuf,
        problem: String,
        fix: &'static str,
    },
    #[error("outbox {path}: {source}")]
    Io { path: PathBuf, source: redb::Error },
}

/// A message as kept on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: u64,
    /// Milliseconds since the Unix epoch when it was queued.
    pub created_ms: u64,
    pub msg: Message,
}

fn encode(s: &Stored) -> Vec<u8> {
    let m = &s.msg;
    let mut out = Vec::with_capacity(24 + m.topic.len() + m.payload.len());
    out.extend_from_slice(&s.created_ms.to_le_bytes());
    out.push(m.retain as u8);
    out.extend_from_slice(&(m.topic.len() as u32).to_le_bytes());
    out.extend_from_slice(m.topic.as_bytes());
    match &m.event {
        Some((camera, seq)) => {
            out.push(1);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&(camera.len() as u32).to_le_bytes());
            out.extend_from_slice(camera.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&m.payload);
    out
}

fn decode(id: u64, b: &[u8]) -> Option<Stored> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize);
    let u64_at = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
    let created_ms = u64_at(0)?;
    let retain = *b.get(8)? != 0;
    let tlen = u32_at(9)?;
    let topic = String::from_utf8(b.get(13..13 + tlen)?.to_vec()).ok()?;
    let mut i = 13 + tlen;
    let event = match *b.get(i)? {
        1 => {
            let seq = u64_at(i + 1)?;
            let clen = u32_at(i + 9)?;
            let camera = String::from_utf8(b.get(i + 13..i + 13 + clen)?.to_vec()).ok()?;
            i += 13 + clen;
            Some((camera, seq))
        }
        _ => {
            i += 1;
            None
        }
    };
    let payload = b.get(i..)?.to_vec();
    Some(Stored {
        id,
        created_ms,
        msg: Message {
            topic,
            payload,
            reliable: true,
            retain,
            event,
        },
    })
}

pub struct Store {
    /// `None` after a failed write, until it is reopened.
    db: Option<Database>,
    path: PathBuf,
}

/// Whether redb says the file is not a (readable) database.
fn is_corrupt(e: &redb::Error) -> bool {
    match e {
        redb::Error::Corrupted(_) => true,
        redb::Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Whether redb says the disk has no room (full, over quota, or past the
/// process's file-size limit).
fn no_room(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(io)
        if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG)))
}

/// Where an outbox file that cannot be used goes:
/// `outbox.redb.<why>-<unix seconds>` (`corrupt`, `no-room`).
fn aside_path(path: &Path, why: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{why}-{secs}"));
    PathBuf::from(name)
}

/// The marker of numbers handed out but not written (see the module doc).
fn unsynced_marker(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".unsynced");
    PathBuf::from(name)
}

/// What a store held when it was opened.
pub struct Restored {
    /// Undelivered messages, oldest first.
    pub pending: Vec<Stored>,
    /// Last event number per camera.
    pub seqs: HashMap<String, u64>,
    /// The outbox file's epoch (new when the file was just created).
    pub epoch: String,
}

impl Store {
    /// Opens (or creates) the store and reads what it holds.
    pub fn open(path: &Path) -> Result<(Self, Restored), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.into(),
                problem: format!("cannot create its folder: {e}"),
                fix: "point outbox.path at a writable folder, e.g. /var/lib/stylecam/outbox.redb",
            })?;
        }
        let open_err = |problem: String| {
            StoreError::Open {
            path: path.into(),
            problem,
            fix: "another stylecam may be using this outbox (one per daemon), or the folder is not writable",
        }
        };
        let existed = path.exists();
        let opened = Database::create(path)
            .map_err(redb::Error::from)
            .and_then(|db| {
                let store = Self {
                    db: Some(db),
                    path: path.into(),
                };
                store.read().map(|r| (store, r))
            });
        match opened {
            Ok(x) => Ok(x),
            // A file that is not an outbox (a crash mid-write on a broken
            // disk, a stray file): moved aside, never a crash loop.
            Err(e) if is_corrupt(&e) => {
                let aside = aside_path(path, "corrupt");
                std::fs::rename(path, &aside).map_err(|re| {
                    open_err(format!(
                        "{e}; moving it aside to {} failed: {re}",
                        aside.display()
                    ))
                })?;
                log::error!(
                    "outbox {}: {e}: moved aside to {} (its undelivered messages stay there); a new outbox starts, with a new event epoch",
                    path.display(),
                    aside.display()
                );
                let db = match Database::create(path).map_err(redb::Error::from) {
                    Ok(db) => db,
                    Err(e) if no_room(&e) => return Ok(Self::without_file(path, false, &e)),
                    Err(e) => return Err(open_err(e.to_string())),
                };
                let store = Self {
                    db: Some(db),
                    path: path.into(),
                };
                let restored = store.read().map_err(|source| StoreError::Io {
                    path: path.into(),
                    source,
                })?;
                Ok((store, restored))
            }
            Err(e) if no_room(&e) => Ok(Self::without_file(path, existed, &e)),
            Err(e) => Err(open_err(e.to_string())),
        }
    }

    /// The store when its file cannot be opened for want of room: nothing
    /// restored, a new epoch; the first write tries the file again. A file
    /// that `existed` is moved aside (its messages stay there: the file
    /// written later starts afresh); one this open began is removed.
    fn without_file(path: &Path, existed: bool, e: &redb::Error) -> (Self, Restored) {
        let epoch = new_epoch();
        log::error!(
            "outbox {}: {e}: no room on its disk; starting with the outbox in memory \
             (new event epoch {epoch}, seq starts at 1); it is written once there is room",
            path.display()
        );
        if existed {
            let aside = aside_path(path, "no-room");
            match std::fs::rename(path, &aside) {
                Ok(()) => log::error!(
                    "outbox {}: moved aside to {} (its undelivered messages stay there)",
                    path.display(),
                    aside.display()
                ),
                Err(re) => log::error!(
                    "outbox {}: moving it aside to {} failed: {re}",
                    path.display(),
                    aside.display()
                ),
            }
        } else {
            let _ = std::fs::remove_file(path);
        }
        let store = Self {
            db: None,
            path: path.into(),
        };
        let restored = Restored {
            pending: vec![],
            seqs: HashMap::new(),
            epoch,
        };
        (store, restored)
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("the store is open")
    }

    fn read(&self) -> Result<Restored, redb::Error> {
        let marker = unsynced_marker(&self.path);
        let unsynced = marker.exists();
        let tx = self.db().begin_write()?;
        tx.open_table(OUTBOX)?;
        let mut seq_table = tx.open_table(SEQ)?;
        let epoch = {
            let mut meta = tx.open_table(META)?;
            let existing = meta.get("epoch")?.map(|v| v.value().to_string());
            match existing {
                Some(old) if unsynced => {
                    let e = new_epoch();
                    meta.insert("epoch", e.as_str())?;
                    seq_table.retain(|_, _| false)?;
                    log::warn!(
                        "outbox {}: the last run numbered events it could not write (disk full or failing); \
                         new event epoch {e} (was {old}, seq starts at 1) so that no seq repeats",
                        self.path.display()
                    );
                    e
                }
                Some(e) => e,
                None => {
                    let e = new_epoch();
                    meta.insert("epoch", e.as_str())?;
                    log::info!(
                        "outbox {}: new file, event epoch {e} (seq starts at 1)",
                        self.path.display()
                    );
                    e
                }
            }
        };
        drop(seq_table);
        tx.commit()?;
        if unsynced {
            // Gone only once the new epoch is on disk.
            let _ = std::fs::remove_file(&marker);
        }
        let tx = self.db().begin_read()?;
        let mut pending = vec![];
        let mut corrupt = 0;
        for row in tx.open_table(OUTBOX)?.iter()? {
            let (k, v) = row?;
            match decode(k.value(), v.value()) {
                Some(s) => pending.push(s),
                None => corrupt += 1,
            }
        }
        if corrupt > 0 {
            log::warn!(
                "outbox {}: {corrupt} unreadable records skipped",
                self.path.display()
            );
        }
        let mut seqs = HashMap::new();
        for row in tx.open_table(SEQ)?.iter()? {
            let (k, v) = row?;
            seqs.insert(k.value().to_string(), v.value());
        }
        Ok(Restored {
            pending,
            seqs,
            epoch,
        })
    }

    /// Adds and removes messages in one durable transaction and raises
    /// each camera's last event number to at least `seqs`' (numbers go
    /// with the transaction even when their message was dropped).
    pub fn commit(
        &mut self,
        add: &[Stored],
        remove: &[u64],
        seqs: &HashMap<String, u64>,
    ) -> Result<(), StoreError> {
        if add.is_empty() && remove.is_empty() && seqs.is_empty() {
            return Ok(());
        }
        self.write(
            |tx| {
                let mut table = tx.open_table(OUTBOX)?;
                for s in add {
                    table.insert(s.id, encode(s).as_slice())?;
                }
                for id in remove {
                    table.remove(id)?;
                }
                Ok(())
            },
            seqs,
        )
    }

    /// Makes the file hold exactly `all` (after failed writes, when the
    /// file may miss messages or hold delivered ones), with `seqs` as in
    /// [`Self::commit`].
    pub fn replace_all(
        &mut self,
        all: &[Stored],
        seqs: &HashMap<String, u64>,
    ) -> Result<(), StoreError> {
        self.write(
            |tx| {
                let mut table = tx.open_table(OUTBOX)?;
                table.retain(|_, _| false)?;
                for s in all {
                    table.insert(s.id, encode(s).as_slice())?;
                }
                Ok(())
            },
            seqs,
        )
    }

    /// Notes on disk (an empty marker file) that events are being
    /// numbered which the file does not hold; false if even that failed.
    pub fn mark_unsynced(&self) -> bool {
        let marker = unsynced_marker(&self.path);
        marker.exists() || std::fs::File::create(&marker).is_ok()
    }

    /// Runs `f` and the `seqs` update in one transaction, reopening the
    /// file first when an earlier write failed; a failure drops the handle.
    fn write(
        &mut self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
        seqs: &HashMap<String, u64>,
    ) -> Result<(), StoreError> {
        let io = |path: &Path, source: redb::Error| StoreError::Io {
            path: path.into(),
            source,
        };
        if self.db.is_none() {
            let existed = self.path.exists();
            match Database::create(&self.path) {
                Ok(db) => self.db = Some(db),
                Err(e) => {
                    // A create that failed half-way (no room) leaves a
                    // file that is no database: every later try would fail.
                    if !existed {
                        let _ = std::fs::remove_file(&self.path);
                    }
                    return Err(io(&self.path, e.into()));
                }
            }
        }
        let run = |db: &Database| -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            f(&tx)?;
            {
                let mut seq = tx.open_table(SEQ)?;
                for (camera, n) in seqs {
                    let last = seq.get(camera.as_str())?.map_or(0, |g| g.value());
                    if *n > last {
                        seq.insert(camera.as_str(), *n)?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        };
        match run(self.db()) {
            Ok(()) => Ok(()),
            Err(e) => {
                // redb fails every later transaction on this handle.
                self.db = None;
                Err(io(&self.path, e))
            }
        }
    }

    /// The numbers on disk match what was handed out: the marker goes.
    pub fn synced(&self) {
        let _ = std::fs::remove_file(unsynced_marker(&self.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: u64, event: Option<(&str, u64)>) -> Stored {
        Stored {
            id,
            created_ms: 1_700_000_000_000 + id,
            msg: Message {
                topic: format!("stylecam/d/cam/styles/{id}"),
                payload: format!("{{\"n\":{id}}}").into_bytes(),
                reliable: true,
                retain: id.is_multiple_of(2),
                event: event.map(|(c, s)| (c.to_string(), s)),
            },
        }
    }

    #[test]
    fn survives_reopen_in_order_with_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/outbox.redb");
        {
            let (mut store, r) = Store::open(&path).unwrap();
            assert!(r.pending.is_empty() && r.seqs.is_empty());
            assert_eq!(r.epoch.len(), 16);
            let add: Vec<Stored> = (1..=5).map(|i| stored(i, Some(("cam", i + 10)))).collect();
            let seqs = HashMap::from([("cam".to_string(), 15)]);
            store.commit(&add, &[], &seqs).unwrap();
            store
                .commit(&[stored(6, None)], &[2, 4], &HashMap::new())
                .unwrap();
        }
        let epoch = Store::open(&path).unwrap().1.epoch;
        let (_store, r) = Store::open(&path).unwrap();
        assert_eq!(r.epoch, epoch, "the epoch stays with the file");
        let ids: Vec<u64> = r.pending.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 3, 5, 6]);
        assert_eq!(r.pending[0], stored(1, Some(("cam", 11))));
        assert_eq!(r.pending[3], stored(6, None));
        assert_eq!(r.seqs.get("cam"), Some(&15));
    }

    #[test]
    fn a_new_file_is_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let first = Store::open(&path).unwrap().1.epoch;
        std::fs::remove_file(&path).unwrap();
        let second = Store::open(&path).unwrap().1.epoch;
        assert_ne!(first, second);
    }

    /// A file that is not an outbox (random bytes, a truncated header) is
    /// moved aside and a new outbox starts in a new epoch: no crash loop.
    #[test]
    fn a_corrupt_outbox_is_moved_aside_with_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let good = Store::open(&path).unwrap().1.epoch;
        let bytes = std::fs::read(&path).unwrap();
        for (i, junk) in [
            (0..100_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<u8>>(),
            bytes[..bytes.len().min(200)].to_vec(),
            b"stylecam".to_vec(),
        ]
        .into_iter()
        .enumerate()
        {
            std::fs::write(&path, &junk).unwrap();
            let (_store, r) = Store::open(&path).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_ne!(r.epoch, good, "case {i}: a new epoch");
            assert!(r.pending.is_empty() && r.seqs.is_empty(), "case {i}");
            let aside: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .collect();
            assert!(!aside.is_empty(), "case {i}: the old file is kept aside");
            for a in aside {
                std::fs::remove_file(a.path()).unwrap();
            }
        }
    }

    #[test]
    fn a_second_daemon_on_the_same_outbox_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let _first = Store::open(&path).unwrap();
        let e = Store::open(&path).err().unwrap().to_string();
        assert!(
            e.contains("outbox.path") && e.contains("another stylecam"),
            "{e}"
        );
    }

    #[test]
    fn numbers_without_a_message_are_kept_and_replace_all_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        {
            let (mut store, _) = Store::open(&path).unwrap();
            store
                .commit(
                    &[stored(1, Some(("a", 1)))],
                    &[],
                    &HashMap::from([("a".into(), 1)]),
                )
                .unwrap();
            // Event 2 of `a` was dropped before any write; event 7 of `b` too.
            let seqs = HashMap::from([("a".into(), 2), ("b".into(), 7)]);
            store.commit(&[], &[], &seqs).unwrap();
            // A lower number never lowers what is on disk.
            store
                .commit(&[], &[], &HashMap::from([("b".into(), 3)]))
                .unwrap();
            store
                .replace_all(&[stored(5, None), stored(9, None)], &HashMap::new())
                .unwrap();
        }
        let (_store, r) = Store::open(&path).unwrap();
        assert_eq!(r.seqs, HashMap::from([("a".into(), 2), ("b".into(), 7)]));
        let ids: Vec<u64> = r.pending.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![5, 9]);
    }

    #[test]
    fn a_store_left_unsynced_opens_in_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let first = {
            let (mut store, r) = Store::open(&path).unwrap();
            store
                .commit(
                    &[stored(1, Some(("a", 4)))],
                    &[],
                    &HashMap::from([("a".into(), 4)]),
                )
                .unwrap();
            // Writes fail from here on; numbers 5.. are handed out.
            assert!(store.mark_unsynced());
            r.epoch
        };
        let (store, r) = Store::open(&path).unwrap();
        assert_ne!(r.epoch, first, "a new epoch");
        assert!(r.seqs.is_empty(), "seq starts at 1 again");
        assert_eq!(r.pending.len(), 1, "undelivered messages stay");
        drop(store);
        assert!(!unsynced_marker(&path).exists());
        let (_s, again) = Store::open(&path).unwrap();
        assert_eq!(again.epoch, r.epoch, "only once");
    }
}
