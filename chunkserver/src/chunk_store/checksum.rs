//! CRC32 arithmetic on blocks: whole pieces, continuation and zero padding.

use super::body::Body;
use super::error::ChunkError;
use super::BLOCK_BYTES;

static ZEROS: [u8; BLOCK_BYTES as usize] = [0; BLOCK_BYTES as usize];

/// The CRC32 of `bytes` appended to data whose CRC32 is `crc` (`crc` 0 is the
/// CRC of nothing).
pub(crate) fn extend(crc: u32, bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(bytes);
    h.finalize()
}

/// The CRC32 of `zeros_bytes` zeros appended to data whose CRC32 is `crc`.
pub(crate) fn extend_with_zeros(crc: u32, zeros_bytes: u64) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    let mut left = zeros_bytes;
    while left > 0 {
        let n = left.min(BLOCK_BYTES);
        h.update(&ZEROS[..n as usize]);
        left -= n;
    }
    h.finalize()
}

/// Checks the CRC32 of each consecutive 64 KiB piece of a write's body.
pub(crate) fn check_body(data: Body<'_>, body_crcs: &[u32]) -> Result<(), ChunkError> {
    let block = BLOCK_BYTES as usize;
    let pieces = data.len().div_ceil(block);
    if body_crcs.len() != pieces {
        return Err(ChunkError::BadArgument(format!("{} body CRCs for a body of {} bytes ({pieces} pieces of {BLOCK_BYTES})", body_crcs.len(), data.len())));
    }
    for (piece, &expected) in body_crcs.iter().enumerate() {
        let mut h = crc32fast::Hasher::new();
        data.for_each_slice(piece * block, ((piece + 1) * block).min(data.len()), |s| h.update(s));
        let actual = h.finalize();
        if actual != expected {
            return Err(ChunkError::BodyChecksum { piece, expected, actual });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_equals_hash_of_concatenation() {
        let a = b"hello, ";
        let b = b"chunk world";
        let whole: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        assert_eq!(extend(crc32fast::hash(a), b), crc32fast::hash(&whole));
        assert_eq!(extend(0, b), crc32fast::hash(b));
    }

    #[test]
    fn zero_padding_equals_hash_with_zeros() {
        for n in [0u64, 1, 4095, BLOCK_BYTES, BLOCK_BYTES + 3] {
            let mut v = b"abc".to_vec();
            v.resize(3 + n as usize, 0);
            assert_eq!(extend_with_zeros(crc32fast::hash(b"abc"), n), crc32fast::hash(&v), "n {n}");
        }
    }

    #[test]
    fn body_pieces_are_checked_in_order() {
        let data: Vec<u8> = (0..BLOCK_BYTES as usize + 10).map(|i| (i % 251) as u8).collect();
        let good = [crc32fast::hash(&data[..BLOCK_BYTES as usize]), crc32fast::hash(&data[BLOCK_BYTES as usize..])];
        let whole: [&[u8]; 1] = [&data];
        // Frames that straddle the piece boundary check the same.
        let split: [&[u8]; 3] = [&data[..1000], &data[1000..BLOCK_BYTES as usize + 3], &data[BLOCK_BYTES as usize + 3..]];
        for parts in [&whole[..], &split[..]] {
            let body = Body::new(parts);
            assert!(check_body(body, &good).is_ok());
            let bad = [good[0], good[1] ^ 1];
            assert!(matches!(check_body(body, &bad), Err(ChunkError::BodyChecksum { piece: 1, .. })));
            assert!(matches!(check_body(body, &good[..1]), Err(ChunkError::BadArgument(_))));
        }
        assert!(check_body(Body::new(&[]), &[]).is_ok());
    }
}
