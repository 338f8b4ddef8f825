//! Fault hooks (feature `fault-injection`, tests only): place a failure at an exact point
//! instead of hoping a sleep lands it there.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
pub struct Faults {
    lost_acks: AtomicU32,
    abandoned_batches: AtomicU32,
}

impl Faults {
    /// The next `n` successful appends report an unknown outcome, as if the acknowledgement
    /// had been lost after the server stored the events.
    pub fn lose_next_acks(&self, n: u32) {
        self.lost_acks.store(n, Ordering::SeqCst);
    }

    pub(crate) fn take_lost_ack(&self) -> bool {
        take(&self.lost_acks)
    }

    /// The next `n` atomic batches stop before their commit message, as a writer that dies
    /// mid-batch would; the append reports an unknown outcome.
    pub fn abandon_next_batches(&self, n: u32) {
        self.abandoned_batches.store(n, Ordering::SeqCst);
    }

    pub(crate) fn take_abandoned_batch(&self) -> bool {
        take(&self.abandoned_batches)
    }
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
