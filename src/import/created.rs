//! The contacts an import has created, by id, with the line each came from.
//!
//! A later row with the same address finds that contact among the existing
//! ones; this says it is a duplicate within the file and which line came
//! first. Ids and lines both grow as the file is read, so the pairs are kept
//! as runs `(first id, first line, length)`: a clean file costs one run per
//! chunk, and memory grows with the gaps (rejected rows, ids another writer
//! took), not with the rows.

use std::collections::BTreeMap;

/// Runs of `(id, line)` pairs where both go up by one.
#[derive(Debug, Default)]
pub struct CreatedLines {
    /// First id of a run → (its line, the run's length).
    runs: BTreeMap<i64, (u64, u64)>,
    /// The run being extended: its first id.
    last: Option<i64>,
}

impl CreatedLines {
    /// Records created contacts, as `(id, line)` pairs in any order.
    pub fn record(&mut self, mut pairs: Vec<(i64, u64)>) {
        pairs.sort_unstable();
        for (id, line) in pairs {
            if let Some(start) = self.last {
                let (first_line, len) = self.runs.get_mut(&start).expect("last run exists");
                if id == start + *len as i64 && line == *first_line + *len {
                    *len += 1;
                    continue;
                }
            }
            self.runs.insert(id, (line, 1));
            self.last = Some(id);
        }
    }

    /// The line the contact `id` was created from, if this import created it.
    pub fn line_of(&self, id: i64) -> Option<u64> {
        let (&start, &(line, len)) = self.runs.range(..=id).next_back()?;
        let offset = (id - start) as u64;
        (offset < len).then_some(line + offset)
    }

    /// How many runs are kept (memory used).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_from_consecutive_lines_are_one_run() {
        let mut c = CreatedLines::default();
        c.record((0..2000).map(|i| (100 + i, 2 + i as u64)).collect());
        c.record((2000..4000).map(|i| (100 + i, 2 + i as u64)).collect());
        assert_eq!(c.runs(), 1);
        assert_eq!(c.line_of(100), Some(2));
        assert_eq!(c.line_of(4099), Some(4001));
        assert_eq!(c.line_of(99), None);
        assert_eq!(c.line_of(4100), None);
    }

    #[test]
    fn gaps_in_ids_or_lines_start_new_runs_and_ids_outside_them_are_not_ours() {
        let mut c = CreatedLines::default();
        // Line 5 was rejected; id 13 was taken by another writer.
        c.record(vec![(12, 4), (11, 3), (10, 2), (14, 6), (15, 7)]);
        assert_eq!(c.runs(), 2);
        assert_eq!(
            (10..=16).map(|id| c.line_of(id)).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4), None, Some(6), Some(7), None]
        );
        // Ids handed out in another order (a second worker's sequence cache).
        c.record(vec![(5, 9), (6, 10)]);
        assert_eq!(c.line_of(6), Some(10));
        assert_eq!(c.line_of(7), None);
        assert_eq!(c.line_of(12), Some(4));
    }
}
