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
    db: Database,
    path: PathBuf,
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
        let db = Database::create(path).map_err(|e| StoreError::Open {
            path: path.into(),
            problem: e.to_string(),
            fix: "another stylecam may be using this outbox (one per daemon), or the folder is not writable",
        })?;
        let store = Self {
            db,
            path: path.into(),
        };
        let restored = store.read().map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })?;
        Ok((store, restored))
    }

    fn read(&self) -> Result<Restored, redb::Error> {
        let tx = self.db.begin_write()?;
        tx.open_table(OUTBOX)?;
        tx.open_table(SEQ)?;
        let epoch = {
            let mut meta = tx.open_table(META)?;
            let existing = meta.get("epoch")?.map(|v| v.value().to_string());
            match existing {
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
        tx.commit()?;
        let tx = self.db.begin_read()?;
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

    /// Adds and removes messages in one durable transaction; events also
    /// advance their camera's last event number.
    pub fn commit(&self, add: &[Stored], remove: &[u64]) -> Result<(), StoreError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let io = |source: redb::Error| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let run = || -> Result<(), redb::Error> {
            let tx = self.db.begin_write()?;
            {
                let mut table = tx.open_table(OUTBOX)?;
                for s in add {
                    table.insert(s.id, encode(s).as_slice())?;
                }
                for id in remove {
                    table.remove(id)?;
                }
                let mut seq = tx.open_table(SEQ)?;
                for s in add {
                    if let Some((camera, n)) = &s.msg.event {
                        let last = seq.get(camera.as_str())?.map_or(0, |g| g.value());
                        if *n > last {
                            seq.insert(camera.as_str(), *n)?;
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(())
        };
        run().map_err(io)
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
            let (store, r) = Store::open(&path).unwrap();
            assert!(r.pending.is_empty() && r.seqs.is_empty());
            assert_eq!(r.epoch.len(), 16);
            let add: Vec<Stored> = (1..=5).map(|i| stored(i, Some(("cam", i + 10)))).collect();
            store.commit(&add, &[]).unwrap();
            store.commit(&[stored(6, None)], &[2, 4]).unwrap();
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
}
