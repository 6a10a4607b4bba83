//! Byte offset to 1-based line and column (in characters), in O(log n).

use alloc::vec::Vec;

/// Where each line starts.
#[derive(Debug)]
pub(crate) struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub(crate) fn new(text: &'t str) -> Lines<'t> {
        let mut starts = alloc::vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines { text, starts }
    }

    pub(crate) fn at(&self, offset: usize) -> (u32, u32) {
        let idx = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(idx).copied().unwrap_or(0);
        let end = offset.min(self.text.len());
        let col = self.text.get(start..end).map_or(0, |s| s.chars().count());
        (
            u32::try_from(idx + 1).unwrap_or(u32::MAX),
            u32::try_from(col + 1).unwrap_or(u32::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_core() {
        let t = "ab\né\n\nxyz";
        let l = Lines::new(t);
        for off in 0..=t.len() {
            if t.is_char_boundary(off) {
                assert_eq!(l.at(off), portcullis_core::json::line_col(t, off), "{off}");
            }
        }
    }
}
