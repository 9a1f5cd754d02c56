//! Guards the hard-state and snapshot files: they round-trip, a torn temp file left by a crash
//! is ignored, and a bad CRC or a short file is reported with the file's path, never believed.

// Tests may unwrap (house rule); helpers outside #[test] need saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use bytes::Bytes;
use wal::{
    Error, HardState, SnapshotMeta, decode_snapshot, encode_snapshot, hard_state,
    install_staged_snapshot, load_latest_snapshot, prune_snapshots, save_snapshot,
    snapshot_checksum, snapshot_path, write_snapshot_file,
};

fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn snap_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".snap"))
        .collect();
    names.sort();
    names
}

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index,
        term,
        config: Bytes::from(format!("members at {index}")),
    }
}

#[test]
fn hard_state_round_trips_and_is_none_when_fresh() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(hard_state::load(dir.path()).unwrap(), None);
    assert_eq!(hard_state::load(&dir.path().join("missing")).unwrap(), None);
    let first = HardState {
        term: 3,
        vote: 2,
        commit: 17,
    };
    hard_state::save(dir.path(), &first).unwrap();
    assert_eq!(hard_state::load(dir.path()).unwrap(), Some(first));
    let second = HardState {
        term: 4,
        vote: 0,
        commit: u64::MAX,
    };
    hard_state::save(dir.path(), &second).unwrap();
    assert_eq!(hard_state::load(dir.path()).unwrap(), Some(second));
}

#[test]
fn hard_state_ignores_a_torn_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let saved = HardState {
        term: 9,
        vote: 1,
        commit: 5,
    };
    hard_state::save(dir.path(), &saved).unwrap();
    let temp = dir
        .path()
        .join(format!("{}.tmp", hard_state::HARD_STATE_FILE));
    fs::write(&temp, b"rafths\0\0\x01\0\0\0half").unwrap();
    assert_eq!(hard_state::load(dir.path()).unwrap(), Some(saved));
    // The next save replaces the torn temp file.
    hard_state::save(dir.path(), &HardState::default()).unwrap();
    assert_eq!(
        hard_state::load(dir.path()).unwrap(),
        Some(HardState::default())
    );
}

#[test]
fn hard_state_reports_a_bad_crc_or_short_file() {
    let dir = tempfile::tempdir().unwrap();
    hard_state::save(
        dir.path(),
        &HardState {
            term: 1,
            vote: 1,
            commit: 1,
        },
    )
    .unwrap();
    let path = dir.path().join(hard_state::HARD_STATE_FILE);
    let good = fs::read(&path).unwrap();
    for offset in 0..good.len() {
        fs::write(&path, &good).unwrap();
        flip(&path, offset);
        match hard_state::load(dir.path()) {
            Err(error @ Error::Corrupt { .. }) => {
                assert!(error.to_string().contains("hard_state"), "{error}")
            }
            other => panic!("flip at {offset} accepted: {other:?}"),
        }
    }
    for len in [0, 10, good.len() - 1] {
        fs::write(&path, &good[..len]).unwrap();
        assert!(matches!(
            hard_state::load(dir.path()),
            Err(Error::Corrupt { .. })
        ));
    }
}

#[test]
fn snapshot_round_trips_and_keeps_only_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(load_latest_snapshot(dir.path()).unwrap(), None);
    assert_eq!(
        load_latest_snapshot(&dir.path().join("missing")).unwrap(),
        None
    );
    save_snapshot(dir.path(), &meta(10, 2), b"state at ten").unwrap();
    let (m, data) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!((m, &data[..]), (meta(10, 2), &b"state at ten"[..]));

    save_snapshot(dir.path(), &meta(25, 3), b"").unwrap();
    let (m, data) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!(m, meta(25, 3));
    assert!(data.is_empty());
    assert_eq!(snap_files(dir.path()), vec![format!("{:020}.snap", 25)]);
}

#[test]
fn snapshot_ignores_a_torn_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    save_snapshot(dir.path(), &meta(10, 2), b"ten").unwrap();
    // A crash while writing a newer snapshot leaves its temp file half-written.
    fs::write(
        dir.path().join(format!("{:020}.snap.tmp", 30)),
        b"raftsnap\x01",
    )
    .unwrap();
    let (m, _) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!(m.index, 10);
    // The next save cleans it up.
    save_snapshot(dir.path(), &meta(31, 4), b"thirty-one").unwrap();
    assert_eq!(snap_files(dir.path()), vec![format!("{:020}.snap", 31)]);
}

#[test]
fn pruning_keeps_only_the_newest_snapshot_a_crash_left_beside_an_older_one() {
    let dir = tempfile::tempdir().unwrap();
    save_snapshot(dir.path(), &meta(10, 2), b"ten").unwrap();
    // A crash between the newer snapshot's rename and the older one's removal.
    let older = dir.path().join(format!("{:020}.snap", 10));
    let kept = fs::read(&older).unwrap();
    save_snapshot(dir.path(), &meta(20, 3), b"twenty").unwrap();
    fs::write(&older, kept).unwrap();
    fs::write(dir.path().join(format!("{:020}.snap.tmp", 30)), b"torn").unwrap();
    prune_snapshots(dir.path()).unwrap();
    assert_eq!(snap_files(dir.path()), vec![format!("{:020}.snap", 20)]);
    prune_snapshots(&dir.path().join("missing")).unwrap();
}

#[test]
fn installing_a_staged_snapshot_removes_older_ones_but_not_a_save_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    save_snapshot(dir.path(), &meta(10, 2), b"ten").unwrap();
    save_snapshot(staging.path(), &meta(40, 5), b"forty").unwrap();
    let staged = staging.path().join("staged.part");
    fs::rename(staging.path().join(format!("{:020}.snap", 40)), &staged).unwrap();
    // The node's own older save, still writing its temp file.
    let temp = dir.path().join(format!("{:020}.snap.tmp", 12));
    fs::write(&temp, b"in progress").unwrap();
    install_staged_snapshot(dir.path(), &staged, 40).unwrap();
    assert_eq!(
        snap_files(dir.path()),
        vec![format!("{:020}.snap.tmp", 12), format!("{:020}.snap", 40)]
    );
    let (m, data) = load_latest_snapshot(dir.path()).unwrap().unwrap();
    assert_eq!((m, &data[..]), (meta(40, 5), &b"forty"[..]));
}

#[test]
fn snapshot_reports_a_bad_crc() {
    let dir = tempfile::tempdir().unwrap();
    save_snapshot(dir.path(), &meta(7, 1), &[0xab; 300]).unwrap();
    let path = dir.path().join(format!("{:020}.snap", 7));
    let good = fs::read(&path).unwrap();
    for offset in (0..good.len()).step_by(3) {
        fs::write(&path, &good).unwrap();
        flip(&path, offset);
        match load_latest_snapshot(dir.path()) {
            Err(error @ Error::Corrupt { .. }) => {
                assert!(error.to_string().contains(".snap"), "{error}")
            }
            other => panic!("flip at {offset} accepted: {other:?}"),
        }
    }
    fs::write(&path, &good[..good.len() - 1]).unwrap();
    assert!(matches!(
        load_latest_snapshot(dir.path()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn snapshot_refuses_an_oversized_config() {
    let dir = tempfile::tempdir().unwrap();
    let big = SnapshotMeta {
        index: 1,
        term: 1,
        config: Bytes::from(vec![0; wal::SNAPSHOT_CONFIG_BYTES_MAX + 1]),
    };
    assert!(matches!(
        save_snapshot(dir.path(), &big, b""),
        Err(Error::ConfigTooLarge { .. })
    ));
}

/// A backup is a snapshot file made in memory: byte for byte what `save_snapshot` writes, so
/// one format and one checksum serve both; a flipped byte anywhere is caught.
#[test]
fn an_encoded_snapshot_is_the_saved_file_and_checks_itself() {
    let dir = tempfile::tempdir().unwrap();
    let m = meta(42, 7);
    save_snapshot(dir.path(), &m, b"the store image").unwrap();
    let on_disk = fs::read(snapshot_path(dir.path(), 42)).unwrap();
    let encoded = encode_snapshot(&m, b"the store image").unwrap();
    assert_eq!(encoded, on_disk);
    let stored = u32::from_le_bytes(on_disk[on_disk.len() - 4..].try_into().unwrap());
    assert_eq!(snapshot_checksum(&encoded), Some(stored));

    let backup = dir.path().join("backup.snap");
    write_snapshot_file(&backup, &encoded).unwrap();
    let bytes = Bytes::from(fs::read(&backup).unwrap());
    let (read, data) = decode_snapshot(&backup, &bytes).unwrap();
    assert_eq!((read, &data[..]), (m, &b"the store image"[..]));
    assert!(!dir.path().join("backup.snap.tmp").exists());

    for offset in [0, 13, encoded.len() / 2, encoded.len() - 1] {
        let mut bad = encoded.clone();
        bad[offset] ^= 0x01;
        let err = decode_snapshot(&backup, &Bytes::from(bad)).unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. }),
            "offset {offset}: {err}"
        );
    }
}
