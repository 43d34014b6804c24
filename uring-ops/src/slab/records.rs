//! The completion records of tagged entries, queued in completion order until handed out.

use super::Slab;
use crate::completion::Completion;

/// The completion records not handed out yet, oldest first: a `Vec` read from `head` on, emptied
/// (keeping its memory) when the last is read. Cheaper per record than a `VecDeque`, whose
/// indices wrap; records are handed out soon after they are queued, so the queue rarely grows
/// past a batch.
#[derive(Default)]
pub(super) struct Records {
    queue: Vec<Completion>,
    head: usize,
}

impl Records {
    #[inline]
    fn push(&mut self, c: Completion) {
        self.queue.push(c);
    }

    #[inline]
    fn pop(&mut self) -> Option<Completion> {
        let c = *self.queue.get(self.head)?;
        self.head += 1;
        if self.head == self.queue.len() {
            self.queue.clear();
            self.head = 0;
        }
        Some(c)
    }

    #[inline]
    fn len(&self) -> usize {
        self.queue.len() - self.head
    }

    /// Moves every record to the end of `into`; returns how many.
    fn move_into(&mut self, into: &mut Vec<Completion>) -> usize {
        let n = self.len();
        into.extend_from_slice(&self.queue[self.head..]);
        self.queue.clear();
        self.head = 0;
        n
    }
}

impl Slab {
    /// The oldest completion record not handed out yet.
    #[inline]
    pub(crate) fn next_completion(&mut self) -> Option<Completion> {
        self.done.pop()
    }

    /// How many completion records wait to be handed out.
    #[inline]
    pub(crate) fn completions_queued(&self) -> usize {
        self.done.len()
    }

    /// Moves every queued record to the end of `into`. Returns how many.
    pub(crate) fn move_completions(&mut self, into: &mut Vec<Completion>) -> usize {
        self.done.move_into(into)
    }

    /// Queues the record of a tagged entry's completion.
    #[inline]
    pub(super) fn record(&mut self, key: u64, tag: u64, res: i32, flags: u32, item: Option<u32>) {
        self.done
            .push(Completion::new(self.ring, key, tag, res, flags, item));
    }
}
