//! The snapshot reader: a snapshot file (the WAL's seal around a membership and a store image)
//! and the store image itself.

use fs::Store;
use raft::Membership;
use wal::{Error, SnapshotMeta};

/// Magic of the WAL's snapshot files.
const SNAPSHOT_FILE_MAGIC: [u8; 8] = *b"raftsnap";

/// The input three ways: as a store image through [`Store::restore`]; as a snapshot file
/// through [`wal::load_latest_snapshot`] (named by the index at its payload offset); and as the
/// payload of a correctly sealed snapshot file, so that the fuzzer reaches the layout checks
/// behind the CRC. A snapshot that loads has its configuration decoded with
/// [`Membership::decode`] and its image restored, as a member does on start.
///
/// Asserts: no panic; refusals are typed ([`Error::Corrupt`] from the WAL); a loaded snapshot
/// has the index its name promises, and saving its parts again loads them back equal; a decoded
/// configuration is valid and round-trips; a restored store is canonical (its snapshot is
/// exactly the input) and keeps no file expired by its own clock.
pub fn snapshot(data: &[u8]) {
    check_image(data);
    let named = data.get(12..20).map_or(0, u64_le);
    load_file(named, data);
    let index = data.get(0..8).map_or(0, u64_le);
    let mut file = SNAPSHOT_FILE_MAGIC.to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(data);
    let crc = crc32c::crc32c(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    load_file(index, &file);
}

fn u64_le(field: &[u8]) -> u64 {
    u64::from_le_bytes(field.try_into().expect("an 8-byte field"))
}

/// A store image through [`Store::restore`].
fn check_image(image: &[u8]) {
    let Ok(store) = Store::restore(image) else {
        return;
    };
    assert_eq!(
        store.snapshot(),
        image,
        "a restored store's snapshot differs from its image"
    );
    if let Some(at) = store.next_expiry_ms() {
        assert!(
            at > store.last_clock_ms(),
            "a restored store holds a file expired at its own clock"
        );
    }
    assert!(store.content_bytes() <= image.len() as u64);
}

/// `bytes` as the snapshot file at `index` of an otherwise empty directory, loaded.
fn load_file(index: u64, bytes: &[u8]) {
    let dir = crate::scratch_dir();
    let path = wal::snapshot_path(dir.path(), index);
    std::fs::write(&path, bytes).expect("write the snapshot file");
    let (meta, image) = match wal::load_latest_snapshot(dir.path()) {
        Ok(Some(loaded)) => loaded,
        Ok(None) => panic!("a snapshot file present loads as none"),
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "untyped refusal: {e}");
            return;
        }
    };
    assert_eq!(meta.index, index, "a snapshot loads with another index");
    assert!(meta.config.len() <= wal::SNAPSHOT_CONFIG_BYTES_MAX);
    if let Ok(membership) = Membership::decode(&meta.config) {
        assert_eq!(membership.validate(), Ok(()));
        assert_eq!(Membership::decode(&membership.encode()), Ok(membership));
    }
    check_image(&image);
    resave(&meta, &image);
}

/// Saving a loaded snapshot's parts again must load them back unchanged.
fn resave(meta: &SnapshotMeta, image: &[u8]) {
    let dir = crate::scratch_dir();
    wal::save_snapshot(dir.path(), meta, image).expect("a loaded snapshot saves again");
    let loaded = wal::load_latest_snapshot(dir.path()).expect("a saved snapshot loads");
    assert_eq!(
        loaded,
        Some((meta.clone(), bytes::Bytes::copy_from_slice(image))),
        "a snapshot changed across save and load"
    );
}
