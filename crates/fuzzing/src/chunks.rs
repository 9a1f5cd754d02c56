//! How a target cuts one input into the reads a socket might deliver.

/// Chunk plans every stream decoder is fed: the whole input in one read, one byte per read,
/// and uneven reads whose sizes (1 to 17 bytes) come from the input itself.
pub(crate) fn plans(data: &[u8]) -> Vec<Vec<&[u8]>> {
    let whole = vec![data];
    let bytes = data.chunks(1).collect();
    let mut uneven = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = usize::from(data[i % data.len()] % 17) + 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        uneven.push(head);
        rest = tail;
        i += 1;
    }
    vec![whole, bytes, uneven]
}
