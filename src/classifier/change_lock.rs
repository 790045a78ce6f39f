//! One change to a classifier's state at a time.
//!
//! An update reads the store, trains for a while (awaiting between stages)
//! and then writes a version. A rollback, reset, import or reload that ran
//! in the middle of it would be undone by the update's write, or would load
//! a head the update is about to replace. So every such change takes this
//! lock: changes run one after another in the order they were asked for
//! (first come, first served), and an update asked for while another update
//! runs is refused rather than queued — two updates in a row would train on
//! the same corrections twice.
//!
//! Pure Rust over `std::task` wakers: no runtime, so the same rules run in
//! the browser's event loop and in native tests.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// What holds (or waits for) the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Training and storing a new head version.
    Update,
    /// Anything else that rewrites which head is current: rollback, reset,
    /// import, reload, deletion.
    Other,
}

/// A first-come, first-served lock over a classifier's state changes.
#[derive(Debug, Default)]
pub struct ChangeLock {
    /// Tickets are handed out in order; the holder is `serving`.
    next_ticket: Cell<u64>,
    serving: Cell<u64>,
    /// Tickets whose waiter gave up (its future was dropped): skipped.
    abandoned: RefCell<BTreeSet<u64>>,
    /// Whether the ticket being served is held, and by what.
    held: Cell<Option<Change>>,
    /// Updates asked for and not yet finished (waiting or running).
    updates: Cell<usize>,
    wakers: RefCell<Vec<Waker>>,
}

impl ChangeLock {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while an update waits for the lock or holds it.
    pub fn update_pending(&self) -> bool {
        self.updates.get() > 0
    }

    /// What holds the lock now, if anything.
    pub fn holder(&self) -> Option<Change> {
        self.held.get()
    }

    /// Waits for every change asked for before this one, then holds the
    /// lock until the guard is dropped. An [`Change::Update`] is refused
    /// with [`Error::InvalidState`] while another update is pending.
    pub fn acquire(&self, change: Change) -> Result<Acquire<'_>> {
        if change == Change::Update {
            if self.update_pending() {
                return Err(Error::InvalidState(
                    "an update is already running; wait for it (whenIdle) before starting another"
                        .into(),
                ));
            }
            self.updates.set(self.updates.get() + 1);
        }
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        Ok(Acquire {
            lock: self,
            ticket,
            change,
            done: false,
        })
    }

    /// Resolves once no update is pending (at once if none is).
    pub fn until_no_update(&self) -> UntilNoUpdate<'_> {
        UntilNoUpdate { lock: self }
    }

    fn release(&self, ticket: u64, change: Change) {
        debug_assert_eq!(self.serving.get(), ticket);
        self.held.set(None);
        if change == Change::Update {
            self.updates.set(self.updates.get() - 1);
        }
        self.advance(ticket + 1);
    }

    /// Moves `serving` to `next`, past abandoned tickets, and wakes every
    /// waiter (each checks whether its turn has come).
    fn advance(&self, mut next: u64) {
        let mut abandoned = self.abandoned.borrow_mut();
        while abandoned.remove(&next) {
            next += 1;
        }
        drop(abandoned);
        self.serving.set(next);
        self.wake_all();
    }

    /// Every waiter checks again (its turn, or no update pending).
    fn wake_all(&self) {
        for waker in self.wakers.take() {
            waker.wake();
        }
    }

    fn register(&self, cx: &Context<'_>) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
    }
}

/// A place in the queue; resolves to the [`ChangeGuard`].
#[must_use = "a change waits for its turn only while its future is polled"]
pub struct Acquire<'a> {
    lock: &'a ChangeLock,
    ticket: u64,
    change: Change,
    done: bool,
}

impl<'a> Future for Acquire<'a> {
    type Output = ChangeGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        if lock.serving.get() == self.ticket && lock.held.get().is_none() {
            lock.held.set(Some(self.change));
            self.done = true;
            return Poll::Ready(ChangeGuard {
                lock,
                ticket: self.ticket,
                change: self.change,
            });
        }
        lock.register(cx);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Given up before its turn: its ticket must not block those behind.
        let lock = self.lock;
        if self.change == Change::Update {
            lock.updates.set(lock.updates.get() - 1);
        }
        if lock.serving.get() == self.ticket && lock.held.get().is_none() {
            lock.advance(self.ticket + 1);
        } else {
            lock.abandoned.borrow_mut().insert(self.ticket);
            // An abandoned update may have been what `until_no_update` waits for.
            lock.wake_all();
        }
    }
}

/// Holds the lock; dropping it lets the next change run.
pub struct ChangeGuard<'a> {
    lock: &'a ChangeLock,
    ticket: u64,
    change: Change,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.lock.release(self.ticket, self.change);
    }
}

/// See [`ChangeLock::until_no_update`].
pub struct UntilNoUpdate<'a> {
    lock: &'a ChangeLock,
}

impl Future for UntilNoUpdate<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.lock.update_pending() {
            self.lock.register(cx);
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(CountingWaker(AtomicUsize::new(0))));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn changes_run_in_the_order_they_were_asked_for() {
        let lock = ChangeLock::new();
        let mut update = lock.acquire(Change::Update).unwrap();
        let mut rollback = lock.acquire(Change::Other).unwrap();
        let mut import = lock.acquire(Change::Other).unwrap();
        let Poll::Ready(update_guard) = poll(&mut update) else {
            panic!("the first change runs at once")
        };
        assert_eq!(lock.holder(), Some(Change::Update));
        assert!(poll(&mut import).is_pending());
        assert!(poll(&mut rollback).is_pending());
        drop(update_guard);
        assert!(poll(&mut import).is_pending(), "the rollback came first");
        let Poll::Ready(rollback_guard) = poll(&mut rollback) else {
            panic!("the rollback runs after the update")
        };
        drop(rollback_guard);
        assert!(poll(&mut import).is_ready());
    }

    #[test]
    fn a_second_update_is_refused_while_one_is_pending() {
        let lock = ChangeLock::new();
        let mut first = lock.acquire(Change::Update).unwrap();
        let error = lock.acquire(Change::Update).err().unwrap();
        assert_eq!(error.code(), "InvalidStateError");
        let Poll::Ready(guard) = poll(&mut first) else {
            panic!()
        };
        assert!(lock.acquire(Change::Update).is_err(), "still running");
        drop(guard);
        drop(first);
        assert!(lock.acquire(Change::Update).is_ok(), "free again");
    }

    #[test]
    fn an_abandoned_place_does_not_block_the_queue() {
        let lock = ChangeLock::new();
        let mut first = lock.acquire(Change::Other).unwrap();
        let second = lock.acquire(Change::Update).unwrap();
        let mut third = lock.acquire(Change::Other).unwrap();
        let Poll::Ready(guard) = poll(&mut first) else {
            panic!()
        };
        drop(second);
        assert!(
            !lock.update_pending(),
            "the abandoned update no longer counts"
        );
        drop(guard);
        assert!(poll(&mut third).is_ready());
        // Abandoned while it was its turn.
        let lock = ChangeLock::new();
        let turn = lock.acquire(Change::Other).unwrap();
        let mut next = lock.acquire(Change::Other).unwrap();
        drop(turn);
        assert!(poll(&mut next).is_ready());
    }

    #[test]
    fn an_abandoned_update_wakes_whoever_waits_for_no_update() {
        let lock = ChangeLock::new();
        let mut other = lock.acquire(Change::Other).unwrap();
        let Poll::Ready(guard) = poll(&mut other) else {
            panic!()
        };
        let update = lock.acquire(Change::Update).unwrap();
        let woken = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(woken.clone());
        let mut idle = lock.until_no_update();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut idle).poll(&mut cx).is_pending());
        drop(update);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "woken");
        assert!(Pin::new(&mut idle).poll(&mut cx).is_ready());
        drop(guard);
    }

    #[test]
    fn until_no_update_waits_for_the_running_update_only() {
        let lock = ChangeLock::new();
        let mut idle = lock.until_no_update();
        assert!(poll(&mut idle).is_ready(), "nothing running");
        let mut other = lock.acquire(Change::Other).unwrap();
        let Poll::Ready(other_guard) = poll(&mut other) else {
            panic!()
        };
        assert!(poll(&mut idle).is_ready(), "a rollback is not an update");
        let mut update = lock.acquire(Change::Update).unwrap();
        assert!(poll(&mut idle).is_pending(), "an update waits its turn");
        drop(other_guard);
        let Poll::Ready(guard) = poll(&mut update) else {
            panic!()
        };
        assert!(poll(&mut idle).is_pending());
        drop(guard);
        assert!(poll(&mut idle).is_ready());
    }
}
