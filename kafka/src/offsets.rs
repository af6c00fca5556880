//! Per-partition offset bookkeeping of the spout: what was polled, what is done (acked,
//! given up after its retries, or undecodable), and the offset that may be committed.

use std::collections::BTreeMap;

/// One partition's offsets between the last commit and the consumer's position.
#[derive(Debug, Default)]
pub(crate) struct PartitionOffsets {
    /// Polled offsets not yet below the floor: `true` once done. The first entry is
    /// never done (done entries at the front are dropped as the floor moves past them).
    polled: BTreeMap<i64, bool>,
    /// One past the last offset dropped from the front; `None` before the first poll.
    base: Option<i64>,
    /// Offsets that went below the floor since the last commit.
    done_since_commit: u64,
    /// The last offset committed (sent); `None` when nothing was or the last commit failed.
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// Every offset of the partition below the floor is done; the floor is the offset a
    /// commit would store (one past the highest contiguous done offset, where offsets
    /// never polled, e.g. compacted away, do not break contiguity). `None` before the
    /// first record.
    pub fn floor(&self) -> Option<i64> {
        self.polled.keys().next().copied().or(self.base)
    }

    /// Records a polled offset; false if it was seen already (a re-read after a seek or
    /// a reassignment), in which case it must not be emitted again.
    pub fn polled(&mut self, offset: i64) -> bool {
        if self.floor().is_some_and(|f| offset < f) || self.polled.contains_key(&offset) {
            return false;
        }
        if self.base.is_none() {
            self.base = Some(offset);
        }
        self.polled.insert(offset, false);
        true
    }

    /// Marks an offset done (acked, given up or undecodable).
    pub fn done(&mut self, offset: i64) {
        if let Some(d) = self.polled.get_mut(&offset) {
            if !*d {
                *d = true;
            }
        }
        while let Some((&o, &d)) = self.polled.first_key_value() {
            if !d {
                break;
            }
            self.polled.pop_first();
            self.base = Some(o + 1);
            self.done_since_commit += 1;
        }
    }

    /// Polled offsets not yet committed: above the floor (in flight, or done behind one
    /// that is not), or below it but not yet committed.
    pub fn uncommitted(&self) -> u64 {
        self.polled.len() as u64 + self.done_since_commit
    }

    /// The offset to commit now, if it moved since the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        let f = self.floor()?;
        (self.committed != Some(f)).then_some(f)
    }

    /// A commit of `offset` was sent.
    pub fn committing(&mut self, offset: i64) {
        self.committed = Some(offset);
        self.done_since_commit = 0;
    }

    /// A commit failed: the next one is sent whatever the floor.
    pub fn commit_failed(&mut self) {
        self.committed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_up_to_the_highest_contiguous_done_offset() {
        let mut p = PartitionOffsets::default();
        assert_eq!((p.floor(), p.to_commit()), (None, None));
        for o in 5..10 {
            assert!(p.polled(o));
        }
        assert_eq!(p.floor(), Some(5));
        p.done(5);
        p.done(6);
        p.done(8); // a gap at 7
        assert_eq!(p.floor(), Some(7));
        assert_eq!(p.to_commit(), Some(7));
        p.committing(7);
        assert_eq!(p.to_commit(), None);
        assert_eq!(
            p.uncommitted(),
            1 + 1 + 1,
            "7 and 9 open, 8 done since the commit"
        );
        p.done(7);
        assert_eq!(p.floor(), Some(9), "past the gap once it is done");
        p.done(9);
        assert_eq!(p.floor(), Some(10));
        assert_eq!(p.to_commit(), Some(10));
    }

    #[test]
    fn offsets_never_polled_do_not_break_contiguity() {
        let mut p = PartitionOffsets::default();
        for o in [3, 4, 9, 12] {
            assert!(p.polled(o));
        }
        p.done(3);
        p.done(4);
        assert_eq!(p.floor(), Some(9), "5..8 were compacted away");
        p.done(12);
        p.done(9);
        assert_eq!(p.floor(), Some(13));
    }

    #[test]
    fn re_reads_are_refused() {
        let mut p = PartitionOffsets::default();
        assert!(p.polled(0) && p.polled(1));
        p.done(0);
        assert!(!p.polled(0), "below the floor");
        assert!(!p.polled(1), "in flight");
        assert!(p.polled(2));
        p.commit_failed();
        assert_eq!(p.to_commit(), Some(1));
    }
}
