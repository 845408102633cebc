//! [`Posts`]: every post of a replica, stored compactly.
//!
//! A replica may hold millions of posts, so each is kept as a fixed-size record of its id,
//! author, time and log position, with its text in a shared arena of large chunks instead
//! of a heap string of its own: about 48 bytes a post plus its text, and no per-post
//! allocation. The records, too, are kept in blocks of a fixed size, so that a growing
//! replica never copies them all into a larger vector (while its store's lock is held) nor
//! keeps up to as much again in spare capacity.

use crate::id::{Position, Time, UserId};
use crate::post::{Post, PostId, PostText};

/// The size of one chunk of the text arena; a text never spans two chunks.
const CHUNK: usize = 1 << 20;

/// How many records one block holds (3 MiB of them), as a power of two.
const BLOCK_BITS: u32 = 16;
const BLOCK: usize = 1 << BLOCK_BITS;

/// A post's record.
#[derive(Clone, Copy, Debug)]
struct Record {
    id: PostId,
    time: Time,
    position: Position,
    chunk: u32,
    start: u32,
    author: UserId,
    len: u16,
}

/// The posts, each under the handle [`Posts::add`] gave it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Posts {
    /// The records, [`BLOCK`] to a block; every block but the last is full.
    blocks: Vec<Vec<Record>>,
    chunks: Vec<String>,
}

impl Posts {
    /// Stores `post`, written at `position` of the log; returns its handle.
    pub(crate) fn add(&mut self, post: &Post, position: Position) -> u32 {
        let handle = u32::try_from(self.len()).expect("at most 2^32 posts in a replica");
        let text = post.text.as_str();
        let len = u16::try_from(text.len()).expect("a post text is at most 4,000 bytes");
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.len() + text.len() > chunk.capacity())
        {
            self.chunks.push(String::with_capacity(CHUNK));
        }
        let chunk = self.chunks.len() - 1;
        let arena = &mut self.chunks[chunk];
        let start = arena.len();
        arena.push_str(text);
        if self.blocks.last().is_none_or(|block| block.len() == BLOCK) {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        let block = self.blocks.last_mut().expect("a block with room");
        block.push(Record {
            id: post.id,
            time: post.time,
            position,
            chunk: chunk as u32,
            start: start as u32,
            author: post.author,
            len,
        });
        handle
    }

    fn record(&self, handle: u32) -> &Record {
        let handle = handle as usize;
        &self.blocks[handle >> BLOCK_BITS][handle & (BLOCK - 1)]
    }

    /// The post behind `handle`.
    pub(crate) fn get(&self, handle: u32) -> Post {
        let record = self.record(handle);
        let start = record.start as usize;
        let text = &self.chunks[record.chunk as usize][start..start + usize::from(record.len)];
        Post {
            id: record.id,
            author: record.author,
            time: record.time,
            text: PostText::new(text).expect("a stored text was a valid post"),
        }
    }

    /// The time of the post behind `handle`.
    pub(crate) fn time(&self, handle: u32) -> Time {
        self.record(handle).time
    }

    /// The log position of the entry that wrote the post behind `handle`.
    pub(crate) fn position(&self, handle: u32) -> Position {
        self.record(handle).position
    }

    /// How many posts there are.
    pub(crate) fn len(&self) -> usize {
        match self.blocks.last() {
            Some(last) => (self.blocks.len() - 1) * BLOCK + last.len(),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(seq: u64, text: &str) -> Post {
        Post {
            id: PostId { origin: 3, seq },
            author: UserId::new(4).unwrap(),
            time: Time(seq * 10),
            text: PostText::new(text).unwrap(),
        }
    }

    #[test]
    fn posts_come_back_as_they_went_in_across_chunks() {
        let mut posts = Posts::default();
        let long = "é".repeat(1000);
        let stored: Vec<Post> = (1..=3000)
            .map(|seq| post(seq, if seq % 2 == 0 { &long } else { "short 🎉" }))
            .collect();
        for (i, p) in stored.iter().enumerate() {
            assert_eq!(posts.add(p, Position(i as u64 + 7)), i as u32);
        }
        assert!(posts.chunks.len() > 1, "texts spread over several chunks");
        for (i, p) in stored.iter().enumerate() {
            assert_eq!(&posts.get(i as u32), p);
            assert_eq!(posts.position(i as u32), Position(i as u64 + 7));
            assert_eq!(posts.time(i as u32), p.time);
        }
        assert_eq!(posts.len(), 3000);
    }

    #[test]
    fn records_spread_over_blocks_come_back_by_handle() {
        let mut posts = Posts::default();
        let count = 2 * BLOCK + 3;
        for seq in 0..count as u64 {
            posts.add(&post(seq + 1, "x"), Position(seq + 1));
        }
        assert_eq!(posts.blocks.len(), 3, "two full blocks and a third");
        assert_eq!(posts.len(), count);
        for handle in [0, BLOCK - 1, BLOCK, 2 * BLOCK, count - 1] {
            let seq = handle as u64 + 1;
            assert_eq!(posts.get(handle as u32).id.seq, seq);
            assert_eq!(posts.position(handle as u32), Position(seq));
        }
    }
}
