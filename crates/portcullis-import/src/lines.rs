//! Byte offset to 1-based line and column (in characters).
//!
//! Lines are found by binary search; the column counts characters from the
//! line's start, or from the last position asked for when it is on the same
//! line and not after this one (readers ask in document order), so a huge
//! single-line input does not cost its length per position.

use alloc::vec::Vec;
use core::cell::Cell;

/// Where each line starts.
#[derive(Debug)]
pub(crate) struct Lines<'t> {
    text: &'t str,
    starts: Vec<usize>,
    /// The last answer: (offset, line index, column).
    last: Cell<(usize, usize, usize)>,
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
        Lines {
            text,
            starts,
            last: Cell::new((0, 0, 0)),
        }
    }

    pub(crate) fn at(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let idx = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let (last_off, last_idx, last_col) = self.last.get();
        let (from, base) = if last_idx == idx && last_off <= offset {
            (last_off, last_col)
        } else {
            (self.starts.get(idx).copied().unwrap_or(0), 0)
        };
        let col = base + self.text.get(from..offset).map_or(0, |s| s.chars().count());
        self.last.set((offset, idx, col));
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
    fn agrees_with_the_core_in_any_order() {
        let t = "ab\né\n\nxyz é";
        let l = Lines::new(t);
        let offsets: Vec<usize> = (0..=t.len()).filter(|o| t.is_char_boundary(*o)).collect();
        for off in offsets
            .iter()
            .chain(offsets.iter().rev())
            .chain(offsets.iter().step_by(2))
        {
            assert_eq!(
                l.at(*off),
                portcullis_core::json::line_col(t, *off),
                "{off}"
            );
        }
    }
}
