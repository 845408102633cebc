//! Records: the framing of the change log, encoding, and reading back.
//!
//! A record is `[u32 LE payload length][u32 LE CRC-32 of the payload][payload]`, the
//! payload being the JSON of one value, an [`Entry`]. A reader stops at the first record
//! that is not whole and sound, and says why with a [`Damage`].

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tsn_core::change::Entry;
use tsn_core::{Error, Result};

/// Bytes before a record's payload: its length and its checksum.
pub(crate) const HEADER_LEN: usize = 8;

/// The longest payload a record may have. An entry's JSON is a few kilobytes at most (a
/// post is at most 1,000 characters); a longer length field is damage.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 20;

/// What is wrong with the first bad record of a change log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside the record: a write cut short by a crash.
    Incomplete,
    /// The length field is over the limit a record can have.
    TooLong(u32),
    /// The payload does not match its checksum.
    Checksum,
    /// The payload is not the JSON of a log entry.
    Undecodable(String),
    /// The entry is not the one the log needs next.
    OutOfOrder(String),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Incomplete => f.write_str("the last record is incomplete"),
            Damage::TooLong(len) => write!(
                f,
                "a record claims {len} bytes, over the limit of {MAX_PAYLOAD}"
            ),
            Damage::Checksum => f.write_str("a record does not match its checksum"),
            Damage::Undecodable(why) => write!(f, "a record holds no log entry: {why}"),
            Damage::OutOfOrder(why) => write!(f, "a record is out of order: {why}"),
        }
    }
}

/// Why a value could not be made a record.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The value has no JSON.
    Json(serde_json::Error),
    /// Its JSON takes this many bytes, over [`MAX_PAYLOAD`].
    TooLong(usize),
}

impl EncodeError {
    /// The core's error for encoding `what` (such as "the log entry at position 3").
    pub(crate) fn into_error(self, what: &str) -> Error {
        match self {
            EncodeError::Json(e) => Error::storage(format!("encoding {what}"), e),
            EncodeError::TooLong(len) => Error::Invalid(format!(
                "{what} takes {len} bytes, over the limit of {MAX_PAYLOAD}"
            )),
        }
    }
}

/// Appends the record of `value` to `out`; returns the record's length in bytes. On an
/// error `out` is left as it was.
pub(crate) fn encode_value<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<u64, EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        out.truncate(start);
        return Err(EncodeError::Json(e));
    }
    let payload = &out[start + HEADER_LEN..];
    let len = match u32::try_from(payload.len()) {
        Ok(len) if len <= MAX_PAYLOAD => len,
        _ => {
            let len = payload.len();
            out.truncate(start);
            return Err(EncodeError::TooLong(len));
        }
    };
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok((out.len() - start) as u64)
}

/// Appends the record of `entry` to `out`; returns the record's length in bytes.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<u64> {
    encode_value(entry, out)
        .map_err(|e| e.into_error(&format!("the log entry at position {}", entry.position)))
}

/// What [`Scanner::next`] found.
#[derive(Debug)]
pub(crate) enum Record<T = Entry> {
    /// The input ends cleanly, at a record boundary.
    End,
    /// A whole, sound record.
    Whole {
        /// What it holds.
        value: T,
        /// Its length in bytes, header included.
        len: u64,
    },
    /// A record that is not whole and sound; reading stops here.
    Damaged(Damage),
}

/// Reads records one after the other.
#[derive(Debug)]
pub(crate) struct Scanner<R> {
    input: R,
}

impl<R: Read> Scanner<R> {
    /// Reads records from `input`, which starts at a record boundary.
    pub(crate) fn new(input: R) -> Self {
        Scanner { input }
    }

    /// The next record, holding a `T`. An error is a failure to read, not damage.
    pub(crate) fn next<T: DeserializeOwned>(&mut self) -> io::Result<Record<T>> {
        let mut header = [0; HEADER_LEN];
        match read_full(&mut self.input, &mut header)? {
            0 => return Ok(Record::End),
            HEADER_LEN => {}
            _ => return Ok(Record::Damaged(Damage::Incomplete)),
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if len > MAX_PAYLOAD {
            return Ok(Record::Damaged(Damage::TooLong(len)));
        }
        let mut payload = vec![0; len as usize];
        if read_full(&mut self.input, &mut payload)? < payload.len() {
            return Ok(Record::Damaged(Damage::Incomplete));
        }
        if crc32fast::hash(&payload) != crc {
            return Ok(Record::Damaged(Damage::Checksum));
        }
        Ok(match serde_json::from_slice::<T>(&payload) {
            Ok(value) => Record::Whole {
                value,
                len: (HEADER_LEN + payload.len()) as u64,
            },
            Err(e) => Record::Damaged(Damage::Undecodable(e.to_string())),
        })
    }
}

/// Fills `buf` as far as the input goes; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The offset of the first whole, sound record (length in bounds, checksum right, an entry
/// inside) that starts in `file` between `from` and `end`, if any: after a damaged record,
/// one tells damage in the middle of a log from a write cut short at its end.
///
/// Every offset is a candidate; one is read only if its length fits and its payload starts
/// a JSON object, so that a scan costs about one pass over the bytes.
pub(crate) fn next_sound_record(file: &File, from: u64, end: u64) -> io::Result<Option<u64>> {
    const WINDOW: usize = 1 << 20;
    let mut window = vec![0; WINDOW + HEADER_LEN];
    let mut start = from;
    while start + HEADER_LEN as u64 + 2 <= end {
        let want = (end - start).min(window.len() as u64) as usize;
        let got = read_full(
            &mut At::new(file, start, start + want as u64),
            &mut window[..want],
        )?;
        let bytes = &window[..got];
        let candidates = bytes.len().saturating_sub(HEADER_LEN);
        for i in 0..candidates {
            let len = u32::from_le_bytes(bytes[i..i + 4].try_into().expect("four bytes"));
            let at = start + i as u64;
            let fits = (2..=MAX_PAYLOAD).contains(&len)
                && at + (HEADER_LEN as u64) + u64::from(len) <= end;
            if fits && bytes[i + HEADER_LEN] == b'{' {
                let mut scanner = Scanner::new(At::new(file, at, end));
                if let Record::Whole { .. } = scanner.next::<Entry>()? {
                    return Ok(Some(at));
                }
            }
        }
        if candidates == 0 {
            break;
        }
        start += candidates as u64;
    }
    Ok(None)
}

/// Reads a stretch of a file with positioned reads, leaving the file's cursor alone.
#[derive(Debug)]
pub(crate) struct At<'a> {
    file: &'a File,
    offset: u64,
    end: u64,
}

impl<'a> At<'a> {
    /// The bytes of `file` from `offset` up to `end`.
    pub(crate) fn new(file: &'a File, offset: u64, end: u64) -> Self {
        At { file, offset, end }
    }
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.offset)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tsn_core::change::Change;
    use tsn_core::id::{Epoch, Position, Time, UserId};
    use tsn_core::post::{Post, PostId, PostText};

    use super::*;

    fn post_entry(text: PostText) -> Entry {
        Entry {
            position: Position(7),
            epoch: Epoch(2),
            change: Change::Posted(Post {
                id: PostId { origin: 9, seq: 3 },
                author: UserId::new(4).expect("a user"),
                time: Time(1_700_000_000_123_456_789),
                text,
            }),
        }
    }

    fn scan_all(bytes: &[u8]) -> (Vec<Entry>, Option<Damage>) {
        let mut scanner = Scanner::new(bytes);
        let mut entries = Vec::new();
        loop {
            match scanner.next().expect("reading memory") {
                Record::End => return (entries, None),
                Record::Whole { value, .. } => entries.push(value),
                Record::Damaged(damage) => return (entries, Some(damage)),
            }
        }
    }

    #[test]
    fn a_record_is_length_checksum_and_json() {
        let entry = post_entry(PostText::new("hi").expect("a post"));
        let mut out = vec![0xAA];
        let len = encode(&entry, &mut out).expect("encode");
        assert_eq!(len as usize, out.len() - 1);
        let payload = serde_json::to_vec(&entry).expect("json");
        assert_eq!(out[1..5], (payload.len() as u32).to_le_bytes());
        assert_eq!(out[5..9], crc32fast::hash(&payload).to_le_bytes());
        assert_eq!(out[9..], payload[..]);
    }

    #[test]
    fn damage_is_named() {
        let entry = post_entry(PostText::new("hi").expect("a post"));
        let mut good = Vec::new();
        encode(&entry, &mut good).expect("encode");
        assert_eq!(
            scan_all(&good[..good.len() - 1]).1,
            Some(Damage::Incomplete)
        );
        assert_eq!(scan_all(&good[..3]).1, Some(Damage::Incomplete));
        let mut flipped = good.clone();
        *flipped.last_mut().expect("a byte") ^= 1;
        assert_eq!(scan_all(&flipped).1, Some(Damage::Checksum));
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(scan_all(&huge).1, Some(Damage::TooLong(u32::MAX)));
        let mut junk = Vec::new();
        junk.extend_from_slice(&2u32.to_le_bytes());
        junk.extend_from_slice(&crc32fast::hash(b"{}").to_le_bytes());
        junk.extend_from_slice(b"{}");
        assert!(matches!(scan_all(&junk).1, Some(Damage::Undecodable(_))));
        assert_eq!(scan_all(&[]), (vec![], None));
    }

    /// Any text: printable characters and tabs, up to the limit, filtered by the rules.
    fn post_texts() -> impl Strategy<Value = PostText> {
        any::<String>().prop_filter_map("not a post", |s| {
            let s: String = s
                .chars()
                .filter(|&c| !c.is_control() || c == '\t')
                .take(PostText::MAX_CHARS)
                .collect();
            PostText::new(s).ok()
        })
    }

    proptest! {
        #[test]
        fn any_post_text_round_trips_through_a_record(text in post_texts()) {
            let entry = post_entry(text);
            let mut bytes = Vec::new();
            encode(&entry, &mut bytes).expect("encode");
            prop_assert_eq!(scan_all(&bytes), (vec![entry], None));
        }

        #[test]
        fn any_printable_string_makes_a_post_that_round_trips(
            text in "[\\PC\t]{1,1000}"
        ) {
            if let Ok(text) = PostText::new(text) {
                let entry = post_entry(text);
                let mut bytes = Vec::new();
                encode(&entry, &mut bytes).expect("encode");
                prop_assert_eq!(scan_all(&bytes), (vec![entry], None));
            }
        }
    }

    #[test]
    fn a_sound_record_is_found_after_damage_and_none_in_a_torn_tail() {
        let entry = post_entry(PostText::new("hi").expect("a post"));
        let mut log = Vec::new();
        for _ in 0..3 {
            encode(&entry, &mut log).expect("encode");
        }
        let record = log.len() / 3;
        let file = tempfile::tempfile().expect("a file");
        let mut damaged = log.clone();
        damaged[record + HEADER_LEN + 5] ^= 0x20; // in the second record's payload
        damaged[record] ^= 0x01; // and its length
        std::os::unix::fs::FileExt::write_all_at(&file, &damaged, 0).expect("write");
        let end = damaged.len() as u64;
        assert_eq!(
            next_sound_record(&file, record as u64 + 1, end).expect("read"),
            Some(2 * record as u64),
            "the third record, though the second's length is wrong"
        );
        // A torn tail: the last record cut short, nothing sound after the damage.
        assert_eq!(
            next_sound_record(&file, 2 * record as u64 + 1, end - 3).expect("read"),
            None
        );
        assert_eq!(next_sound_record(&file, end, end).expect("read"), None);
    }

    #[test]
    fn the_longest_post_round_trips() {
        let entry = post_entry(PostText::new("🦀".repeat(PostText::MAX_CHARS)).expect("post"));
        let mut bytes = Vec::new();
        encode(&entry, &mut bytes).expect("encode");
        assert_eq!(scan_all(&bytes), (vec![entry], None));
    }
}
