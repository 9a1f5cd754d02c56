//! The file store: the deterministic state machine every replica applies in log order.
//!
//! Every replica applies the same commands with the same clock stamps (the leader's reading,
//! carried in the log), so every replica reaches the same state and gives the same replies. The
//! store reads no clock of its own.
//!
//! # Rules
//! - Stamps never go backwards: a new leader's clock may lag its predecessor's, so the effective
//!   clock of a command is `max(stamp, last clock applied)`. [`Store::apply`] and
//!   [`Store::tick`] record it. This is the replicated clock: it moves only with the log, so
//!   every replica judges expiry at the same instant for the same index, whatever its own clock.
//! - [`Store::read`] (a read served outside the log, by ReadIndex, lease or follower read) is
//!   judged at the last clock applied, never at the serving member's clock: a read served at
//!   a higher index never sees an expired file again.
//! - Versions come from one store-wide counter: each successful write or cas takes the next value
//!   (the first is 1), so a deleted and re-created file never reuses a version and cas has no ABA
//!   problem. Reads, deletes and failed commands consume no version.
//! - A file written with EXPTIME `s > 0` expires at `clock + s * 1000` ms (saturating) and is
//!   expired once the effective clock reaches that instant; EXPTIME 0 means never. An expired file
//!   behaves as if it never existed. A write or cas replaces the expiry.
//! - Memory is bounded by live files: each `apply` purges every file expired at its effective
//!   clock, through an index ordered by expiry instant. So after every `apply` (and in every valid
//!   snapshot) each file either never expires or expires after the last clock applied.
//!
//! # FORMAT (snapshot)
//! [`Store::snapshot`] writes, and [`Store::restore`] reads, this layout. All integers are
//! little-endian; there is no padding.
//!
//! ```text
//! offset  size  field
//! 0       8     magic: the ASCII bytes "RAFTFSS" then 0x00 (SNAPSHOT_MAGIC)
//! 8       4     format version: u32, currently 1 (SNAPSHOT_FORMAT_VERSION)
//! 12      8     version counter: u64, the last version handed out (0 on a fresh store)
//! 20      8     last clock applied: u64, milliseconds
//! 28      8     file count: u64
//! 36      ...   the files, in strictly ascending byte order of name, each:
//!               1      name length: u8, 1..=250
//!               n      name: printable ASCII without spaces
//!               8      version: u64, 1..=version counter
//!               8      expires at: u64 milliseconds, 0 = never; otherwise > last clock applied
//!               8      content length: u64
//!               m      content: any bytes
//! ```
//!
//! Equal stores give equal bytes, and `restore` accepts only bytes in exactly this canonical
//! form, so `snapshot(restore(b)) == b` whenever `restore(b)` succeeds. The snapshot has no
//! checksum of its own: the storage layer that keeps it (the WAL crate) checksums what it writes.
//! The Raft index a snapshot covers is the caller's to record beside it.
//!
//! # Digest
//! [`Store::digest`] summarises the whole store in 64 bits at no cost: every file has a hash of
//! its name, version, expiry and content (taken once, when it is written or restored), the store
//! keeps the wrapping sum of those hashes (order-independent, so insertions and removals update
//! it in O(1)), and the digest mixes that sum with the file count, version counter and clock.
//! Equal stores have equal digests on every replica and build; unequal stores collide only by
//! accident (the content is covered by its CRC-32C), so members with equal digests hold equal
//! stores.

use crate::binary::{self, NameFieldError, Reader, Truncated};
use crate::command::{Command, Name, NameError};
use crate::reply::Reply;
use bytes::{BufMut, Bytes};
use std::collections::{BTreeMap, BTreeSet, btree_map};

/// The bytes every snapshot starts with, so a file of something else is refused at once.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RAFTFSS\0";

/// The snapshot format this code writes and the only one it reads; bump it on any layout change.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// Milliseconds in one second of EXPTIME.
const MS_PER_S: u64 = 1000;

/// Bytes of the fixed snapshot header: magic, format version, counter, clock, file count.
const SNAPSHOT_HEADER_BYTES: usize = 8 + 4 + 8 + 8 + 8;

/// Starts the digest's mixing, so an empty store's digest is not 0.
const DIGEST_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// A bijective 64-bit finaliser (SplitMix64's): every input bit affects every output bit, so
/// sums of mixed values behave like sums of random values.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One file's contribution to [`Store::digest`]: its name (FNV-1a, names are short), version,
/// expiry (0 = never), content length and content CRC-32C, mixed.
fn file_hash(name: &Name, version: u64, expires_at_ms: u64, content: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let name_hash = name.as_bytes().iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    let mut h = mix(name_hash);
    for field in [
        version,
        expires_at_ms,
        content.len() as u64,
        u64::from(crc32c::crc32c(content)),
    ] {
        h = mix(h ^ field);
    }
    h
}

/// Name bytes a [`Key`] holds inline.
const KEY_PREFIX_BYTES: usize = 16;

/// A file's name as the key of [`Store`]'s map, ordered exactly as its bytes are. Its first
/// [`KEY_PREFIX_BYTES`] bytes, zero-padded, sit inline in the map's node, so a search compares
/// them without following a pointer to the name's buffer (a cache miss for every key compared);
/// only names that share the whole prefix, one of them longer than it, compare in full.
#[derive(Clone, Debug)]
struct Key {
    prefix: [u8; KEY_PREFIX_BYTES],
    name: Name,
}

impl Key {
    fn new(name: Name) -> Key {
        let mut prefix = [0u8; KEY_PREFIX_BYTES];
        let bytes = name.as_bytes();
        let n = bytes.len().min(KEY_PREFIX_BYTES);
        prefix[..n].copy_from_slice(&bytes[..n]);
        Key { prefix, name }
    }

    fn of(name: &Name) -> Key {
        Key::new(name.clone())
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        // Byte order: a difference within the padded prefixes is the names' first difference
        // (a name that ended there has a 0, below any byte the other may hold there, and a
        // shorter name sorts first). Equal prefixes with both names within them differ only by
        // trailing zero bytes, so the shorter sorts first; otherwise compare in full.
        self.prefix.cmp(&other.prefix).then_with(|| {
            let (a, b) = (self.name.as_bytes(), other.name.as_bytes());
            if a.len() <= KEY_PREFIX_BYTES && b.len() <= KEY_PREFIX_BYTES {
                a.len().cmp(&b.len())
            } else {
                a.cmp(b)
            }
        })
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.prefix == other.prefix && self.name == other.name
    }
}

impl Eq for Key {}

/// One stored file.
#[derive(Clone, PartialEq, Eq, Debug)]
struct File {
    /// The version the last write or cas gave it.
    version: u64,
    /// Its content, in a buffer of its own (see [`Store::apply`]).
    content: Bytes,
    /// The instant it expires, in milliseconds; `None` if it never does.
    expires_at_ms: Option<u64>,
    /// [`file_hash`] of this file, kept so that removing it updates the digest in O(1).
    hash: u64,
}

impl File {
    /// A file with its hash computed (one pass over the content, when it enters the store).
    fn new(name: &Name, version: u64, content: Bytes, expires_at_ms: Option<u64>) -> File {
        let hash = file_hash(name, version, expires_at_ms.unwrap_or(0), &content);
        File {
            version,
            content,
            expires_at_ms,
            hash,
        }
    }

    /// Whether the file still exists at effective clock `now_ms`.
    fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|at| now_ms < at)
    }

    /// Seconds until expiry at `now_ms`, rounded up; 0 if the file never expires.
    fn remaining_s(&self, now_ms: u64) -> u64 {
        self.expires_at_ms
            .map_or(0, |at| at.saturating_sub(now_ms).div_ceil(MS_PER_S))
    }
}

/// The replicated file store. See the module documentation for its rules and snapshot format.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Store {
    /// Every file, live as of `clock_ms`, ordered by name (the snapshot order).
    files: BTreeMap<Key, File>,
    /// `(expires_at_ms, name)` for exactly the files of `files` that expire.
    expiries: BTreeSet<(u64, Name)>,
    /// The last version handed out; 0 before the first write.
    version: u64,
    /// The largest clock stamp applied so far, in milliseconds.
    clock_ms: u64,
    /// Sum of the content lengths of `files`.
    content_bytes: u64,
    /// Wrapping sum of the `hash` of every file in `files` (see the module's Digest section).
    hash_sum: u64,
}

/// Why [`Store::restore`] refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with [`SNAPSHOT_MAGIC`].
    #[error("not a raftfs store snapshot (bad magic bytes)")]
    BadMagic,
    /// The snapshot was written in a format this code does not read.
    #[error(
        "snapshot format version {0} is not supported (this build reads version {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnsupportedFormat(u32),
    /// The bytes end inside a field.
    #[error("snapshot is truncated")]
    Truncated,
    /// Bytes follow the last file.
    #[error("snapshot has {0} bytes after its last file")]
    TrailingBytes(usize),
    /// A file name breaks the naming rule.
    #[error("snapshot holds an invalid file name: {0}")]
    BadName(NameError),
    /// The file names are not in strictly ascending order (so possibly duplicated).
    #[error("snapshot file {0} is out of order or duplicated")]
    NamesOutOfOrder(Name),
    /// A file's version is 0 or above the store's version counter.
    #[error("snapshot file {name} has version {version}, outside 1..={counter}")]
    BadFileVersion {
        /// The file.
        name: Name,
        /// Its recorded version.
        version: u64,
        /// The store's recorded version counter.
        counter: u64,
    },
    /// A file had expired by the snapshot's own clock, which a store never keeps.
    #[error("snapshot file {0} had already expired")]
    ExpiredFile(Name),
}

impl From<Truncated> for SnapshotError {
    fn from(_: Truncated) -> Self {
        SnapshotError::Truncated
    }
}

impl From<NameFieldError> for SnapshotError {
    fn from(e: NameFieldError) -> Self {
        match e {
            NameFieldError::Truncated => SnapshotError::Truncated,
            NameFieldError::Invalid(e) => SnapshotError::BadName(e),
        }
    }
}

impl Store {
    /// An empty store: no files, version counter 0, clock 0.
    pub fn new() -> Store {
        Store::default()
    }

    /// Applies one command stamped with the leader's clock `clock_ms`, and returns its reply.
    ///
    /// Deterministic: the same commands with the same stamps give the same replies and state on
    /// every replica. A read applied here is judged at the effective stamp like any other command.
    /// If the version counter is exhausted (only reachable from a crafted snapshot), a write or cas
    /// answers [`Reply::Internal`] and changes nothing.
    ///
    /// Written content and new names are copied into buffers of their own, so a small file never
    /// keeps alive a larger buffer it was sliced from (a connection's read buffer, a logged
    /// command, a peer's frame): the store's memory stays what [`Store::content_bytes`] says.
    pub fn apply(&mut self, command: &Command, clock_ms: u64) -> Reply {
        let now_ms = self.effective_clock(clock_ms);
        self.clock_ms = now_ms;
        let reply = match command {
            Command::Read { name } => self.read_at(name, now_ms),
            Command::Write {
                name,
                content,
                exptime_s,
            } => self.write(name, content, *exptime_s, now_ms),
            Command::Cas {
                name,
                version,
                content,
                exptime_s,
            } => match self.live(name, now_ms) {
                None => Reply::FileNotFound,
                Some(file) if file.version != *version => Reply::VersionMismatch {
                    current: file.version,
                },
                Some(_) => self.write(name, content, *exptime_s, now_ms),
            },
            Command::Delete { name } => match self.live(name, now_ms) {
                None => Reply::FileNotFound,
                Some(_) => {
                    self.remove(name);
                    Reply::Deleted
                }
            },
        };
        // Purging last also catches a file written at a clock so near u64::MAX that its expiry
        // saturated to the clock itself.
        self.purge_expired(now_ms);
        reply
    }

    /// Answers a read without changing anything (for reads served outside the log), judged at
    /// the last clock applied: the replicated clock, not the caller's.
    pub fn read(&self, name: &Name) -> Reply {
        self.read_at(name, self.clock_ms)
    }

    /// Applies a clock entry: the replicated clock moves to `max(clock_ms, last clock applied)`
    /// and every file expired by then is dropped. The leader appends one when files are due and
    /// nothing else carries its clock into the log.
    pub fn tick(&mut self, clock_ms: u64) {
        let now_ms = self.effective_clock(clock_ms);
        self.clock_ms = now_ms;
        self.purge_expired(now_ms);
    }

    /// The earliest instant, in milliseconds of the replicated clock, at which a file held now
    /// expires; `None` if none will.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Number of files held (all live as of [`Store::last_clock_ms`]).
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Total bytes of content held.
    pub fn content_bytes(&self) -> u64 {
        self.content_bytes
    }

    /// The last version handed out (0 on a fresh store); the next write or cas gets one more.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The largest clock stamp applied so far, in milliseconds.
    pub fn last_clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// A 64-bit digest of the whole store, in O(1): equal on replicas holding equal stores (same
    /// files, versions, expiries, version counter and clock), different otherwise except by
    /// accident. See the module's Digest section.
    pub fn digest(&self) -> u64 {
        let mut h = mix(self.hash_sum ^ DIGEST_SEED);
        for field in [self.files.len() as u64, self.version, self.clock_ms] {
            h = mix(h ^ field);
        }
        h
    }

    /// The whole store in the binary layout of the module's FORMAT section.
    pub fn snapshot(&self) -> Vec<u8> {
        let files_bytes: usize = self
            .files
            .iter()
            .map(|(key, file)| {
                binary::name_len(&key.name) + 16 + binary::content_len(&file.content)
            })
            .sum();
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + files_bytes);
        out.put_slice(&SNAPSHOT_MAGIC);
        out.put_u32_le(SNAPSHOT_FORMAT_VERSION);
        out.put_u64_le(self.version);
        out.put_u64_le(self.clock_ms);
        out.put_u64_le(self.files.len() as u64);
        for (key, file) in &self.files {
            binary::put_name(&mut out, &key.name);
            out.put_u64_le(file.version);
            out.put_u64_le(file.expires_at_ms.unwrap_or(0));
            binary::put_content(&mut out, &file.content);
        }
        out
    }

    /// Rebuilds a store from [`Store::snapshot`] bytes, refusing anything not in the canonical
    /// layout: wrong magic or format version, truncation, trailing bytes, invalid or unordered
    /// names, impossible versions, already-expired files. Never panics, whatever the input.
    pub fn restore(bytes: &[u8]) -> Result<Store, SnapshotError> {
        let mut input = Reader::new(bytes);
        if input.take(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let format = input.u32()?;
        if format != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedFormat(format));
        }
        let mut store = Store {
            version: input.u64()?,
            clock_ms: input.u64()?,
            ..Store::default()
        };
        let file_count = input.u64()?;
        // No pre-allocation from the untrusted count: each file consumes input, so a false count
        // ends in `Truncated` after at most `bytes.len()` iterations.
        for _ in 0..file_count {
            let (name, file) = store.restore_file(&mut input)?;
            store.insert(name, file);
        }
        match input.remaining() {
            0 => Ok(store),
            n => Err(SnapshotError::TrailingBytes(n)),
        }
    }

    /// Reads and checks one file record against the store restored so far.
    fn restore_file(&self, input: &mut Reader<'_>) -> Result<(Name, File), SnapshotError> {
        let name = input.name()?;
        if self
            .files
            .last_key_value()
            .is_some_and(|(last, _)| last.name >= name)
        {
            return Err(SnapshotError::NamesOutOfOrder(name));
        }
        let version = input.u64()?;
        if version == 0 || version > self.version {
            return Err(SnapshotError::BadFileVersion {
                name,
                version,
                counter: self.version,
            });
        }
        let expires_at_ms = match input.u64()? {
            0 => None,
            at if at <= self.clock_ms => return Err(SnapshotError::ExpiredFile(name)),
            at => Some(at),
        };
        let content = input.content()?;
        let file = File::new(&name, version, content, expires_at_ms);
        Ok((name, file))
    }

    /// `max(stamp, last clock applied)`: stamps never go backwards.
    fn effective_clock(&self, clock_ms: u64) -> u64 {
        clock_ms.max(self.clock_ms)
    }

    /// The file called `name` if it exists and has not expired at `now_ms`.
    fn live(&self, name: &Name, now_ms: u64) -> Option<&File> {
        self.files
            .get(&Key::of(name))
            .filter(|file| file.is_live(now_ms))
    }

    fn read_at(&self, name: &Name, now_ms: u64) -> Reply {
        match self.live(name, now_ms) {
            None => Reply::FileNotFound,
            Some(file) => Reply::Contents {
                version: file.version,
                exptime_s: file.remaining_s(now_ms),
                content: file.content.clone(),
            },
        }
    }

    /// Creates or replaces `name` with the next version. Callers have checked any cas condition.
    fn write(&mut self, name: &Name, content: &Bytes, exptime_s: u64, now_ms: u64) -> Reply {
        let Some(version) = self.version.checked_add(1) else {
            return Reply::Internal;
        };
        self.version = version;
        let expires_at_ms =
            (exptime_s > 0).then(|| now_ms.saturating_add(exptime_s.saturating_mul(MS_PER_S)));
        let file = File::new(
            name,
            version,
            Bytes::copy_from_slice(content),
            expires_at_ms,
        );
        // One search of the map: a file replaced in place keeps its node (and its key), where a
        // removal and an insertion would search twice and rebalance twice. `name` may share the
        // buffer of the command it came from, so what the store keeps is its own copy: the key's
        // name when the file exists, a detached one for a new file.
        match self.files.entry(Key::of(name)) {
            btree_map::Entry::Occupied(mut slot) => {
                let own = slot.key().name.clone();
                let slot = slot.get_mut();
                let old = std::mem::replace(slot, file);
                if let Some(at) = old.expires_at_ms {
                    self.expiries.remove(&(at, own.clone()));
                }
                if let Some(at) = slot.expires_at_ms {
                    self.expiries.insert((at, own));
                }
                self.content_bytes =
                    self.content_bytes - old.content.len() as u64 + slot.content.len() as u64;
                self.hash_sum = self.hash_sum.wrapping_sub(old.hash).wrapping_add(slot.hash);
            }
            btree_map::Entry::Vacant(_) => self.insert(name.detached(), file),
        }
        Reply::Written { version }
    }

    /// Adds a file that is not present, with its expiry entry.
    fn insert(&mut self, name: Name, file: File) {
        if let Some(at) = file.expires_at_ms {
            self.expiries.insert((at, name.clone()));
        }
        self.content_bytes += file.content.len() as u64;
        self.hash_sum = self.hash_sum.wrapping_add(file.hash);
        let replaced = self.files.insert(Key::new(name), file);
        debug_assert!(replaced.is_none(), "insert over a present file");
    }

    /// Removes a file, live or not, with its expiry entry.
    fn remove(&mut self, name: &Name) -> Option<File> {
        let file = self.files.remove(&Key::of(name))?;
        if let Some(at) = file.expires_at_ms {
            self.expiries.remove(&(at, name.clone()));
        }
        self.content_bytes -= file.content.len() as u64;
        self.hash_sum = self.hash_sum.wrapping_sub(file.hash);
        Some(file)
    }

    /// Drops every file expired at `now_ms`, earliest first.
    fn purge_expired(&mut self, now_ms: u64) {
        while self.expiries.first().is_some_and(|(at, _)| *at <= now_ms) {
            let Some((at, name)) = self.expiries.pop_first() else {
                break;
            };
            // The index is kept exact, but check anyway that the entry still describes the file:
            // an entry left over from an earlier incarnation must never delete a rewritten file.
            let current = self
                .files
                .get(&Key::of(&name))
                .and_then(|file| file.expires_at_ms);
            debug_assert_eq!(current, Some(at), "stale expiry entry for {name}");
            if current == Some(at) {
                self.remove(&name);
            }
        }
    }
}

#[cfg(test)]
mod key_tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use super::{Key, Name};
    use bytes::Bytes;

    /// The map's key orders names exactly as their bytes, at and around the inline prefix's
    /// length.
    #[test]
    fn keys_order_as_names() {
        let mut names = Vec::new();
        for base in ["a", "b", "bench-1-1", "0123456789abcde", "0123456789abcdef"] {
            for tail in [
                "",
                "!",
                "0",
                "a",
                "~",
                "0123456789abcdef",
                "0123456789abcdefg",
            ] {
                names.push(format!("{base}{tail}"));
            }
        }
        for a in &names {
            for b in &names {
                let (na, nb) = (
                    Name::new(Bytes::from(a.clone())).unwrap(),
                    Name::new(Bytes::from(b.clone())).unwrap(),
                );
                let ordering = Key::new(na.clone()).cmp(&Key::new(nb.clone()));
                assert_eq!(ordering, a.as_bytes().cmp(b.as_bytes()), "{a} vs {b}");
                assert_eq!(Key::new(na) == Key::new(nb), a == b);
            }
        }
    }
}

#[cfg(test)]
mod ownership_tests {
    #![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

    use super::Store;
    use crate::{Command, Name, StampedCommand};
    use bytes::Bytes;

    /// True if `part` lies in `whole`'s memory.
    fn inside(part: &[u8], whole: &[u8]) -> bool {
        let range = whole.as_ptr_range();
        range.contains(&part.as_ptr())
    }

    /// A decoded command's name and content are slices of the logged bytes; whatever the store
    /// keeps of them (the map key, the expiry index, the content) must be its own copy, or one
    /// small file would keep a whole peer frame or command buffer alive.
    #[test]
    fn the_store_keeps_no_slice_of_a_decoded_command() {
        let mut store = Store::new();
        for round in 0..2 {
            let logged: Bytes = StampedCommand::new(
                1_000 + round,
                Command::Write {
                    name: Name::new(&b"some-file"[..]).unwrap(),
                    content: Bytes::from_static(b"content"),
                    exptime_s: 60,
                },
            )
            .encode();
            let stamped = StampedCommand::decode(&logged).unwrap();
            let Some(Command::Write { name, content, .. }) = &stamped.command else {
                panic!("decoded a write");
            };
            assert!(inside(name.as_bytes(), &logged) && inside(content, &logged));
            // The first round creates the file, the second replaces it in place.
            stamped.apply_to(&mut store);
            for (key, file) in &store.files {
                assert!(!inside(key.name.as_bytes(), &logged), "round {round}: key");
                assert!(!inside(&file.content, &logged), "round {round}: content");
            }
            for (_, name) in &store.expiries {
                assert!(!inside(name.as_bytes(), &logged), "round {round}: expiry");
            }
        }
    }
}
