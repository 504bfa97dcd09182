//! A write's bytes as they arrived: one or several slices in order (the
//! frames of a request body). Writing from the frames themselves saves
//! gathering them into one buffer first: a copy of every byte, and on a
//! 2-core VM a fresh multi-MiB allocation whose pages fault in one by one.

/// Consecutive slices read as one byte string.
#[derive(Clone, Copy)]
pub struct Body<'a> {
    parts: &'a [&'a [u8]],
    len: usize,
}

impl<'a> Body<'a> {
    pub fn new(parts: &'a [&'a [u8]]) -> Body<'a> {
        Body { parts, len: parts.iter().map(|p| p.len()).sum() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with the slices that make up bytes `from..to`, in order.
    pub fn for_each_slice(&self, from: usize, to: usize, mut f: impl FnMut(&'a [u8])) {
        debug_assert!(from <= to && to <= self.len);
        let mut start = 0;
        for part in self.parts {
            let end = start + part.len();
            if end > from && start < to {
                f(&part[from.max(start) - start..to.min(end) - start]);
            }
            if end >= to {
                break;
            }
            start = end;
        }
    }

    /// Copies bytes `from..from + dst.len()` into `dst`.
    pub fn copy_to(&self, from: usize, dst: &mut [u8]) {
        let mut at = 0;
        self.for_each_slice(from, from + dst.len(), |s| {
            dst[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_across_part_boundaries() {
        let whole: Vec<u8> = (0..=255).collect();
        let parts: Vec<&[u8]> = vec![&whole[..0], &whole[..10], &whole[10..11], &whole[11..200], &[], &whole[200..]];
        let body = Body::new(&parts);
        assert_eq!(body.len(), 256);
        for from in [0, 5, 10, 11, 199, 200, 255, 256] {
            for to in from..=256 {
                let mut dst = vec![0; to - from];
                body.copy_to(from, &mut dst);
                assert_eq!(dst, whole[from..to], "{from}..{to}");
                let mut seen = Vec::new();
                body.for_each_slice(from, to, |s| seen.extend_from_slice(s));
                assert_eq!(seen, whole[from..to]);
            }
        }
    }
}
