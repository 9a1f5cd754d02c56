//! The simulated snapshot file: what the runtime writes for `Output::SaveSnapshot`, sends in
//! chunks, stages and verifies before install. Like the server's (the WAL crate's sealed
//! format), it carries what it covers and a checksum over everything, so a file cut short or
//! assembled wrong is refused rather than installed.
//!
//! ```text
//! 0   8  index (LE)
//! 8   8  term (LE)
//! 16  8  checksum: FNV-1a over bytes 0..16 and everything after byte 24
//! 24  4  configuration length m (LE)
//! 28  m  the configuration in force at index (raft::Membership::encode)
//! ..  n  the store image (fs::Store::snapshot)
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use fs::Store;
use raft::{LogIndex, Membership, Term};
use replica::SnapshotInfo;

use crate::chain;

/// Bytes before the image.
const HEADER_BYTES: usize = 24;

/// Writes the file for `store` and `membership` at `index`/`term`.
pub fn encode(
    index: LogIndex,
    term: Term,
    store: &Store,
    membership: &Membership,
) -> (SnapshotInfo, Bytes) {
    let members = membership.encode();
    let mut body = Vec::with_capacity(4 + members.len());
    body.extend_from_slice(&(members.len() as u32).to_le_bytes());
    body.extend_from_slice(&members);
    body.extend_from_slice(&store.snapshot());
    let mut out = BytesMut::with_capacity(HEADER_BYTES + body.len());
    out.put_u64_le(index.0);
    out.put_u64_le(term.0);
    out.put_u64_le(checksum(index, term, &body));
    out.put_slice(&body);
    let info = SnapshotInfo {
        index,
        term,
        file_bytes: out.len() as u64,
    };
    (info, out.freeze())
}

/// Reads a file back: what it covers, the store and the configuration, or `None` if it is
/// damaged.
pub fn decode(file: &[u8]) -> Option<(SnapshotInfo, Store, Membership)> {
    let header = file.get(..HEADER_BYTES)?;
    let word = |k: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[8 * k..8 * k + 8]);
        u64::from_le_bytes(b)
    };
    let (index, term) = (LogIndex(word(0)), Term(word(1)));
    let body = &file[HEADER_BYTES..];
    if word(2) != checksum(index, term, body) {
        return None;
    }
    let (len, rest) = body.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    let members = rest.get(..len)?;
    let membership = Membership::decode(members).ok()?;
    let store = Store::restore(&rest[len..]).ok()?;
    let info = SnapshotInfo {
        index,
        term,
        file_bytes: file.len() as u64,
    };
    Some((info, store, membership))
}

fn checksum(index: LogIndex, term: Term, image: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(16 + image.len());
    bytes.extend_from_slice(&index.0.to_le_bytes());
    bytes.extend_from_slice(&term.0.to_le_bytes());
    bytes.extend_from_slice(image);
    chain::payload_hash(&raft::Payload::Command(Bytes::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_round_trips_and_any_damage_is_refused() {
        let membership = Membership::voters_only([raft::NodeId(1)]);
        let (info, file) = encode(LogIndex(7), Term(2), &Store::new(), &membership);
        let (back, _, members) = decode(&file).unwrap_or_else(|| panic!("does not decode"));
        assert_eq!(members, membership);
        assert_eq!(back, info);
        for cut in 0..file.len() {
            assert!(decode(&file[..cut]).is_none(), "a file cut at {cut} passes");
        }
        let mut flipped = file.to_vec();
        flipped[3] ^= 1;
        assert!(decode(&flipped).is_none());
    }
}
