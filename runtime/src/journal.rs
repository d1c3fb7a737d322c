//! `replicas.journal`: the replicated entries the agent merged since its
//! last replica snapshot (`replicas.bin`), appended and synced before the
//! agent sends anything or acknowledges a publish.
//!
//! The snapshot is written every [`crate::state::REPLICAS_SAVE_INTERVAL`];
//! without the journal, a kill in between would lose what the agent
//! accepted in the meantime, and a lone agent would restart running a
//! release whose changes it no longer holds. With it, the snapshot plus
//! the journal hold everything the agent accepted.
//!
//! The file is [`JOURNAL_MAGIC`], then records, each
//!
//! | bytes | what |
//! | --- | --- |
//! | 4 | payload length, u32 little-endian, at most [`RECORD_BYTES_MAX`] |
//! | 32 | blake3 of the payload, derive-key mode, domain [`JOURNAL_DOMAIN`] |
//! | length | one entry in the wire encoding (`fleetmesh_node::wire::encode_entry`) |
//!
//! All the entries of one drain pass are appended with one write and one
//! `fdatasync` (group commit). A crash can tear only the last write: at
//! start the records are read back up to the first short or altered one,
//! and the file is cut there, counted and logged: never a refusal to
//! start, since everything in it is the fleet's and is verified again as
//! it is merged. Once a snapshot is written (synced and renamed into
//! place), the journal is cut back to its magic: a crash in between only
//! replays entries the snapshot already holds, and merging them again
//! changes nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use fleetmesh_crdt::Digest;
use fleetmesh_node::Entry;
use fleetmesh_node::wire;

use crate::files::{self, Existing, Mode};

/// The first bytes of the journal: what it is and its framing version.
pub const JOURNAL_MAGIC: &[u8; 8] = b"FMJRNL\x00\x01";

/// The records' checksum domain: a journal checksum can never be mistaken
/// for a snapshot's or any signed digest.
pub const JOURNAL_DOMAIN: &str = "fleetmesh 2026-12 replica journal record v1";

/// Length and checksum in front of each record's payload.
pub const RECORD_HEADER: usize = 4 + 32;

/// Longest payload: one entry, which arrived in one message.
pub const RECORD_BYTES_MAX: usize = fleetmesh_node::limits::MESSAGE_BYTES_MAX;

/// Journal size past which the agent writes a snapshot at once instead of
/// waiting for the interval: bounds the disk the journal takes and the
/// time a restart spends replaying it.
pub const JOURNAL_BYTES_MAX: u64 = 16 << 20;

/// Most bytes read back at start, and most the journal may grow to while
/// snapshots keep failing: a cap on what a damaged file can make the agent
/// allocate. Past it the agent stops rather than acknowledge what it could
/// not keep.
pub const JOURNAL_READ_MAX: u64 = 256 << 20;

/// An open journal, appended to by the agent's task only.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Opened for appending: every write lands at the end.
    file: File,
    /// The file's length.
    bytes: u64,
}

/// What reading the journal back at start found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// The entries of the whole records, oldest first.
    pub entries: Vec<Entry>,
    /// Whole records (checksum intact) whose payload did not decode, as a
    /// newer fleetmesh might write them: skipped.
    pub undecodable: u64,
    /// Bytes cut off the end: a torn or damaged tail, or the whole file
    /// when its magic was wrong.
    pub cut_bytes: u64,
    /// What was wrong where the file was cut.
    pub damage: Option<String>,
}

impl Journal {
    /// Opens the journal at `path`, creating it if missing, and reads back
    /// its records. A damaged tail is cut off (see [`Replayed`]); an error
    /// means the file cannot be read, created or written at all.
    pub fn open(path: &Path) -> anyhow::Result<(Journal, Replayed)> {
        let bytes = match read_bounded(path) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot read {}: check the state directory is readable by the agent's user",
                        path.display()
                    )
                });
            }
        };
        let (replayed, good) = match &bytes {
            Some(bytes) => parse(bytes),
            None => (Replayed::default(), None),
        };
        let Some(good) = good else {
            // Missing, or not a journal: start a new one (atomically, so
            // a crash never leaves a file without its magic).
            files::write_atomic(path, JOURNAL_MAGIC, Mode::Public, Existing::Replace)?;
            return Ok((
                Journal::append_to(path, JOURNAL_MAGIC.len() as u64)?,
                replayed,
            ));
        };
        let journal = Journal::append_to(path, good)?;
        if replayed.cut_bytes > 0 {
            journal
                .file
                .set_len(good)
                .and_then(|()| journal.file.sync_all())
                .with_context(|| format!("cannot cut the damaged tail of {}", path.display()))?;
        }
        Ok((journal, replayed))
    }

    fn append_to(path: &Path, bytes: u64) -> anyhow::Result<Journal> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot open {} to append: check the state directory is writable by the agent's user",
                    path.display()
                )
            })?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            bytes,
        })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.bytes <= JOURNAL_MAGIC.len() as u64
    }

    /// Appends `entries` with one write and syncs it; when this returns
    /// `Ok`, they survive a crash or power loss. Returns how many could
    /// not be encoded (over [`RECORD_BYTES_MAX`]: none that merged can
    /// be), which the caller must save by a snapshot instead.
    pub fn append(&mut self, entries: &[Entry]) -> anyhow::Result<usize> {
        let mut buffer = Vec::new();
        let mut skipped = 0;
        for entry in entries {
            match wire::encode_entry(entry) {
                Ok(payload) if payload.len() <= RECORD_BYTES_MAX => {
                    buffer.extend_from_slice(&frame(&payload));
                }
                Ok(_) | Err(_) => skipped += 1,
            }
        }
        if buffer.is_empty() {
            return Ok(skipped);
        }
        let grown = self.bytes + buffer.len() as u64;
        if grown > JOURNAL_READ_MAX {
            anyhow::bail!(
                "{} would grow past {JOURNAL_READ_MAX} bytes: the replica snapshot, which empties it, has failed to save since (see the earlier warnings)",
                self.path.display()
            );
        }
        self.file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        self.bytes = grown;
        Ok(skipped)
    }

    /// Empties the journal once a snapshot holding all of it is on disk.
    /// A failure leaves records the snapshot also holds: harmless, and
    /// tried again after the next snapshot.
    pub fn clear(&mut self) -> anyhow::Result<()> {
        let magic = JOURNAL_MAGIC.len() as u64;
        self.file
            .set_len(magic)
            .and_then(|()| self.file.sync_all())
            .with_context(|| format!("cannot empty {}", self.path.display()))?;
        self.bytes = magic;
        Ok(())
    }
}

/// One record: length, checksum, payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&Digest::of_bytes(JOURNAL_DOMAIN, payload).0);
    record.extend_from_slice(payload);
    record
}

/// Reads a journal's bytes back: the records up to the first damaged one,
/// and where they end (`None` when `bytes` is no journal at all).
fn parse(bytes: &[u8]) -> (Replayed, Option<u64>) {
    let mut replayed = Replayed::default();
    if !bytes.starts_with(JOURNAL_MAGIC) {
        replayed.cut_bytes = bytes.len() as u64;
        replayed.damage = Some("it does not start as a fleetmesh replica journal".into());
        return (replayed, None);
    }
    let good = read_records(bytes, &mut replayed);
    replayed.cut_bytes = (bytes.len() - good) as u64;
    (replayed, Some(good as u64))
}

/// Reads the records of `bytes` (which start with the magic) into
/// `replayed` up to the first damaged one; returns where the good ones end.
fn read_records(bytes: &[u8], replayed: &mut Replayed) -> usize {
    let mut at = JOURNAL_MAGIC.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some((header, rest)) = rest.split_at_checked(RECORD_HEADER) else {
            replayed.damage = Some(format!("a record header is torn at byte {at}"));
            return at;
        };
        let (length, checksum) = header.split_at(4);
        let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]) as usize;
        if length == 0 || length > RECORD_BYTES_MAX {
            replayed.damage = Some(format!("a record at byte {at} states {length} bytes"));
            return at;
        }
        let Some(payload) = rest.get(..length) else {
            replayed.damage = Some(format!("the record at byte {at} is torn"));
            return at;
        };
        if checksum != Digest::of_bytes(JOURNAL_DOMAIN, payload).0 {
            replayed.damage = Some(format!(
                "the record at byte {at} does not match its checksum"
            ));
            return at;
        }
        match wire::decode_entry(payload) {
            Ok(entry) => replayed.entries.push(entry),
            Err(_) => replayed.undecodable += 1,
        }
        at += RECORD_HEADER + length;
    }
    at
}

/// Reads at most [`JOURNAL_READ_MAX`] bytes of `path`: whatever lies past
/// it is cut as damage.
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(JOURNAL_READ_MAX)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetmesh_crdt::{Hlc, IdempotencyKey, Keypair, LedgerRecord, RecordKind, SignedRecord};

    /// A signed ledger record: small, and distinct per `n`.
    fn entry(n: u64) -> Entry {
        let key = Keypair::from_seed([5; 32]);
        let record = LedgerRecord {
            key: IdempotencyKey {
                rule: "web-down".into(),
                target: key.public(),
                incident: format!("web@{n}#0"),
            },
            kind: RecordKind::Started { epoch: n },
            author: key.public(),
            at: Hlc {
                millis: n,
                counter: 0,
            },
        };
        Entry::Ledger(Box::new(SignedRecord::sign(record, &key)))
    }

    /// Writes `writes` group commits of `per_write` records each; returns
    /// the journal's bytes and where each record ends.
    fn written(dir: &Path, writes: u64, per_write: u64) -> (Vec<u8>, Vec<usize>) {
        let path = dir.join("replicas.journal");
        let (mut journal, replayed) = Journal::open(&path).expect("open");
        assert_eq!(replayed, Replayed::default());
        let mut ends = Vec::new();
        for write in 0..writes {
            let entries: Vec<Entry> = (0..per_write)
                .map(|n| entry(write * per_write + n))
                .collect();
            let before = journal.len() as usize;
            assert_eq!(journal.append(&entries).expect("append"), 0);
            let mut at = before;
            for entry in &entries {
                at += RECORD_HEADER + wire::encode_entry(entry).expect("encodes").len();
                ends.push(at);
            }
            assert_eq!(at as u64, journal.len());
        }
        (std::fs::read(&path).expect("read"), ends)
    }

    /// What a restart finds in a journal holding `bytes`: read back
    /// (`file` true: through the file, as the agent does) with its
    /// damage cut off.
    fn reopen(dir: &Path, bytes: &[u8], file: bool) -> Replayed {
        if !file {
            return parse(bytes).0;
        }
        let path = dir.join("replicas.journal");
        std::fs::write(&path, bytes).expect("write");
        let (journal, replayed) = Journal::open(&path).expect("a damaged journal never refuses");
        let kept = std::fs::read(&path).expect("read");
        assert_eq!(kept.len() as u64, journal.len());
        assert_eq!(
            parse(&kept).0.entries,
            replayed.entries,
            "what is kept reads back"
        );
        replayed
    }

    /// The records wholly before byte `damage`, and where they end.
    fn before(ends: &[usize], damage: usize) -> (Vec<Entry>, usize) {
        let whole = ends.iter().filter(|&&end| end <= damage).count();
        let end = if whole == 0 {
            JOURNAL_MAGIC.len()
        } else {
            ends[whole - 1]
        };
        ((0..whole as u64).map(entry).collect(), end)
    }

    #[test]
    fn torn_or_corrupt_writes_keep_every_record_before_the_damage() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (whole, ends) = written(dir.path(), 8, 3);
        let all = reopen(dir.path(), &whole, true);
        assert_eq!(all.entries, before(&ends, whole.len()).0);
        assert_eq!(all.entries.len(), 24);

        // Every byte of the last write (its three records), and every 7th
        // byte before it: the magic, and earlier records' headers and
        // payloads. Every 16th goes through the file (each costs syncs).
        let last_write = ends[ends.len() - 4];
        let boundaries = (0..last_write).step_by(7).chain(last_write..whole.len());
        let mut checked = 0;
        for (index, at) in boundaries.enumerate() {
            let file = index % 16 == 0;
            let magic = at < JOURNAL_MAGIC.len();
            let (kept, kept_end) = before(&ends, at);

            let torn = reopen(dir.path(), &whole[..at], file);
            assert_eq!(torn.entries, kept, "cut at {at}");
            let boundary = at == JOURNAL_MAGIC.len() || ends.contains(&at);
            assert_eq!(torn.damage.is_some(), !boundary, "cut at {at}");
            let cut = if magic { at } else { at - kept_end };
            assert_eq!(torn.cut_bytes as usize, cut, "cut at {at}");

            let mut corrupt = whole.clone();
            corrupt[at] ^= 0x5a;
            let altered = reopen(dir.path(), &corrupt, file);
            assert!(altered.damage.is_some(), "byte {at} altered");
            if magic {
                assert_eq!(altered.entries, Vec::new(), "byte {at} altered");
                assert_eq!(altered.cut_bytes as usize, whole.len());
            } else {
                assert_eq!(altered.entries, kept, "byte {at} altered");
                assert_eq!(altered.cut_bytes as usize, whole.len() - kept_end);
            }
            assert_eq!(torn.undecodable + altered.undecodable, 0);
            checked += 1;
        }
        assert!(checked > 500, "{checked} boundaries checked");
    }

    #[test]
    fn a_cut_journal_takes_new_records_after_the_good_ones() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (whole, ends) = written(dir.path(), 2, 2);
        let path = dir.path().join("replicas.journal");
        std::fs::write(&path, &whole[..ends[2] + 5]).expect("write");
        let (mut journal, replayed) = Journal::open(&path).expect("open");
        assert_eq!(replayed.entries, before(&ends, ends[2]).0);
        assert_eq!(replayed.cut_bytes, 5);
        assert_eq!(journal.len(), ends[2] as u64);
        journal.append(&[entry(9)]).expect("append");
        drop(journal);
        let (_, replayed) = Journal::open(&path).expect("open");
        let mut wanted = before(&ends, ends[2]).0;
        wanted.push(entry(9));
        assert_eq!(replayed.entries, wanted);
        assert_eq!(replayed.damage, None);
    }

    #[test]
    fn clearing_keeps_the_magic_and_a_foreign_file_is_replaced() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("replicas.journal");
        let (mut journal, _) = Journal::open(&path).expect("open");
        assert!(journal.is_empty());
        journal.append(&[entry(1), entry(2)]).expect("append");
        assert!(!journal.is_empty());
        journal.clear().expect("clear");
        assert!(journal.is_empty());
        journal.append(&[entry(3)]).expect("append after clearing");
        drop(journal);
        let (_, replayed) = Journal::open(&path).expect("open");
        assert_eq!(replayed.entries, vec![entry(3)]);

        std::fs::write(&path, b"{\"not\": \"a journal\"}").expect("write");
        let (journal, replayed) = Journal::open(&path).expect("a foreign file never refuses");
        assert_eq!(replayed.entries, Vec::new());
        assert_eq!(replayed.cut_bytes, 20);
        assert!(journal.is_empty());
        assert_eq!(std::fs::read(&path).expect("read"), JOURNAL_MAGIC);

        // A record stating a length past the bound is damage, not an
        // allocation.
        let mut huge = JOURNAL_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 40]);
        std::fs::write(&path, &huge).expect("write");
        let (_, replayed) = Journal::open(&path).expect("open");
        assert!(replayed.damage.expect("damage").contains("states"));
    }
}
