//! A sparse index of the change log: where every [`STRIDE`]-th record starts.
//!
//! A replica may hold millions of entries; an offset per entry would take 8 bytes each
//! (10 MB for 1.3 M entries, twice that while the vector grows). One offset per
//! [`STRIDE`] records takes 64 times less, and a read scans at most `STRIDE - 1` records
//! to reach the one it wants.

/// How many records one mark of the index covers.
pub(crate) const STRIDE: u64 = 64;

/// Where the log's records start, kept for one record in [`STRIDE`].
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// `marks[k]` is where the record of position `k * STRIDE + 1` starts.
    marks: Vec<u64>,
    /// How many records the index covers (from position 1).
    len: u64,
}

/// Where to start reading to reach a record: from `offset`, `skip` records lie before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seek {
    /// A record boundary.
    pub(crate) offset: u64,
    /// How many records to pass over from there.
    pub(crate) skip: u64,
}

impl Index {
    /// Adds the next record, which starts at `offset`.
    pub(crate) fn push(&mut self, offset: u64) {
        if self.len.is_multiple_of(STRIDE) {
            self.marks.push(offset);
        }
        self.len += 1;
    }

    /// How many records the index covers.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Where the record of position `after + 1` starts, for `after` at most
    /// [`Index::len`]; `end`, the end of the records the index covers, is where a record
    /// past them would start.
    pub(crate) fn seek(&self, after: u64, end: u64) -> Seek {
        usize::try_from(after / STRIDE)
            .ok()
            .and_then(|k| self.marks.get(k))
            .filter(|_| after < self.len)
            .map_or(
                Seek {
                    offset: end,
                    skip: 0,
                },
                |&offset| Seek {
                    offset,
                    skip: after % STRIDE,
                },
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index of `n` records of 10 bytes each.
    fn index(n: u64) -> Index {
        let mut index = Index::default();
        for i in 0..n {
            index.push(i * 10);
        }
        index
    }

    #[test]
    fn a_seek_lands_on_the_mark_before_the_record() {
        let index = index(200);
        assert_eq!(index.len(), 200);
        assert_eq!(index.seek(0, 2000), Seek { offset: 0, skip: 0 });
        assert_eq!(
            index.seek(63, 2000),
            Seek {
                offset: 0,
                skip: 63
            }
        );
        assert_eq!(
            index.seek(64, 2000),
            Seek {
                offset: 640,
                skip: 0
            }
        );
        assert_eq!(
            index.seek(199, 2000),
            Seek {
                offset: 1920,
                skip: 7
            }
        );
    }

    #[test]
    fn a_seek_past_the_records_lands_at_the_end() {
        assert_eq!(index(0).seek(0, 0), Seek { offset: 0, skip: 0 });
        assert_eq!(
            index(64).seek(64, 640),
            Seek {
                offset: 640,
                skip: 0
            }
        );
        assert_eq!(
            index(70).seek(70, 700),
            Seek {
                offset: 700,
                skip: 0
            }
        );
    }
}
