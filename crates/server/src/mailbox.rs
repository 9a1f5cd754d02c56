//! Where a connection's replies arrive: one mailbox per connection, holding a place for each
//! command it submitted, in the order it read them.
//!
//! A command's [`ReplyTo`] (the token the node answers through) is a place in its connection's
//! mailbox, not a channel of its own: submitting a command allocates nothing, where a oneshot
//! per command cost an allocation each (docs/perf-log.md, step 17). The node may answer in any
//! order; the connection's writer takes replies in the order the places were reserved, which is
//! the order it must send them in.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use fs::Reply;

/// The replies of one connection, in the order their places were reserved.
#[derive(Default)]
pub struct Mailbox {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Sequence number of `places[0]`.
    head: u64,
    /// Places from the oldest not yet taken on: `None` while the node has the command, its
    /// reply once answered.
    places: VecDeque<Option<Reply>>,
    /// The writer, waiting for the head place to be answered.
    waker: Option<Waker>,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new() -> Arc<Mailbox> {
        Arc::new(Mailbox::default())
    }

    /// Reserves the next place; its reply is taken after those of every place reserved before.
    pub fn reserve(self: &Arc<Self>) -> ReplyTo {
        let mut state = self.lock();
        let seq = state.head + state.places.len() as u64;
        state.places.push_back(None);
        ReplyTo {
            mailbox: Some(Arc::clone(self)),
            seq,
        }
    }

    /// The reply of the oldest place if it has been answered (taking it), else `None`.
    pub fn take(&self) -> Option<Reply> {
        take_head(&mut self.lock())
    }

    /// Like [`Mailbox::take`], but when the oldest place is not answered yet, wakes `cx` once
    /// it is.
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Reply> {
        let mut state = self.lock();
        match take_head(&mut state) {
            Some(reply) => Poll::Ready(reply),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Waits for the reply of the oldest place and takes it. Cancel-safe: a reply is taken
    /// only when this returns it.
    pub async fn next(&self) -> Reply {
        std::future::poll_fn(|cx| self.poll_take(cx)).await
    }

    fn fill(&self, seq: u64, reply: Reply) {
        let waker = {
            let mut state = self.lock();
            let head = state.head;
            let slot = seq
                .checked_sub(head)
                .and_then(|at| usize::try_from(at).ok())
                .and_then(|at| state.places.get_mut(at));
            // A place is taken on only once answered, and answered once: it is still there.
            let Some(slot) = slot else {
                unreachable!("place {seq} answered twice");
            };
            assert!(slot.is_none(), "place {seq} answered twice");
            *slot = Some(reply);
            // The writer waits for the head only; it takes those behind it in the same pass.
            if seq == head {
                state.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn take_head(state: &mut State) -> Option<Reply> {
    let reply = state.places.front_mut()?.take()?;
    state.places.pop_front();
    state.head += 1;
    Some(reply)
}

/// Where the reply of one command goes: its place in its connection's mailbox. Dropped without
/// an answer, it answers `ERR_INTERNAL`.
pub struct ReplyTo {
    /// `None` once answered.
    mailbox: Option<Arc<Mailbox>>,
    seq: u64,
}

impl ReplyTo {
    /// Answers the command. The connection may have gone meanwhile: the reply is then dropped
    /// with the mailbox.
    pub fn send(mut self, reply: Reply) {
        if let Some(mailbox) = self.mailbox.take() {
            mailbox.fill(self.seq, reply);
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        // While unwinding from a broken invariant, a second panic here would abort the process
        // and hide the first.
        if std::thread::panicking() {
            return;
        }
        // Unanswered: the node dropped the command (it is stopping), which docs/protocol.md
        // answers ERR_INTERNAL.
        if let Some(mailbox) = self.mailbox.take() {
            mailbox.fill(self.seq, Reply::Internal);
        }
    }
}

impl fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyTo").field("seq", &self.seq).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(version: u64) -> Reply {
        Reply::Written { version }
    }

    #[test]
    fn replies_are_taken_in_the_order_places_were_reserved() {
        let mailbox = Mailbox::new();
        let first = mailbox.reserve();
        let second = mailbox.reserve();
        let third = mailbox.reserve();
        third.send(written(3));
        second.send(written(2));
        assert_eq!(mailbox.take(), None, "the first is not answered yet");
        first.send(written(1));
        assert_eq!(mailbox.take(), Some(written(1)));
        assert_eq!(mailbox.take(), Some(written(2)));
        assert_eq!(mailbox.take(), Some(written(3)));
        assert_eq!(mailbox.take(), None);
    }

    #[test]
    fn a_token_dropped_unanswered_answers_internal() {
        let mailbox = Mailbox::new();
        let dropped = mailbox.reserve();
        let answered = mailbox.reserve();
        answered.send(written(7));
        drop(dropped);
        assert_eq!(mailbox.take(), Some(Reply::Internal));
        assert_eq!(mailbox.take(), Some(written(7)));
    }

    #[test]
    fn the_writer_is_woken_when_the_head_is_answered() {
        let mailbox = Mailbox::new();
        let first = mailbox.reserve();
        let second = mailbox.reserve();
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waker = Waker::from(Arc::new(Counter(Arc::clone(&woken))));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(mailbox.poll_take(&mut cx), Poll::Pending);
        second.send(written(2));
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 0);
        first.send(written(1));
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(mailbox.poll_take(&mut cx), Poll::Ready(written(1)));
        assert_eq!(mailbox.poll_take(&mut cx), Poll::Ready(written(2)));
    }

    struct Counter(Arc<std::sync::atomic::AtomicUsize>);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn places_are_reused_without_growing() {
        let mailbox = Mailbox::new();
        for round in 0..1000 {
            let token = mailbox.reserve();
            token.send(written(round));
            assert_eq!(mailbox.take(), Some(written(round)));
        }
        assert!(mailbox.lock().places.capacity() < 16);
    }
}
