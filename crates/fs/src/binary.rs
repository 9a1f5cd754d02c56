//! Little-endian field reading and writing shared by the two binary forms of this crate: the
//! store snapshot and the logged command. Reading is bounds-checked and never panics, because
//! both forms come back from disk or from a peer.

use crate::command::{NAME_BYTES_MAX, Name, NameError};
use bytes::{BufMut, Bytes};

// A name's length is written as one byte.
const _: () = assert!(NAME_BYTES_MAX <= u8::MAX as usize);

/// The input ended before a field it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Why a name field could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NameFieldError {
    /// The input ended inside the field.
    Truncated,
    /// The bytes are not a valid name.
    Invalid(NameError),
}

impl From<Truncated> for NameFieldError {
    fn from(_: Truncated) -> Self {
        NameFieldError::Truncated
    }
}

/// A cursor over a byte slice that refuses to read past its end.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    /// The buffer `rest` lies in, when contents and names may be slices of it.
    source: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`; contents and names it reads are copies.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            rest: buf,
            source: None,
        }
    }

    /// A reader positioned at the start of `buf` whose contents and names are slices of `buf`,
    /// sharing its allocation.
    pub(crate) fn sharing(buf: &'a Bytes) -> Self {
        Reader {
            rest: buf,
            source: Some(buf),
        }
    }

    /// `part` (read from `rest`) as a slice of the source, or as a copy.
    fn bytes(&self, part: &[u8]) -> Bytes {
        match self.source {
            Some(source) => source.slice_ref(part),
            None => Bytes::copy_from_slice(part),
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or(Truncated)?;
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A `u64` length followed by that many bytes.
    pub(crate) fn content(&mut self) -> Result<Bytes, Truncated> {
        let len = self.u64()?;
        // A length that does not fit in memory cannot be backed by the input either.
        let len = usize::try_from(len).map_err(|_| Truncated)?;
        let part = self.take(len)?;
        Ok(self.bytes(part))
    }

    /// A one-byte length followed by that many bytes, checked as a [`Name`].
    pub(crate) fn name(&mut self) -> Result<Name, NameFieldError> {
        let len = usize::from(self.u8()?);
        let part = self.take(len)?;
        Name::new(self.bytes(part)).map_err(NameFieldError::Invalid)
    }
}

/// Appends a name as a one-byte length and its bytes.
pub(crate) fn put_name(dst: &mut impl BufMut, name: &Name) {
    // Names are at most NAME_BYTES_MAX (<= 255) bytes by construction, so the cast is exact.
    dst.put_u8(name.as_bytes().len() as u8);
    dst.put_slice(name.as_bytes());
}

/// Appends content as a `u64` length and its bytes.
pub(crate) fn put_content(dst: &mut impl BufMut, content: &[u8]) {
    dst.put_u64_le(content.len() as u64);
    dst.put_slice(content);
}

/// Bytes [`put_name`] writes for `name`.
pub(crate) fn name_len(name: &Name) -> usize {
    1 + name.as_bytes().len()
}

/// Bytes [`put_content`] writes for `content`.
pub(crate) fn content_len(content: &[u8]) -> usize {
    8 + content.len()
}
