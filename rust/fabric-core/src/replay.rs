//! Duplicate suppression for migration ids: a 1024-id sliding window per sending zone.
//!
//! The link may duplicate and reorder packets. A receiver acts on a migration id at most once:
//! the first intent reserves a slot, later copies are dropped. An abort that overtakes its intent
//! marks the id too, so the late intent cannot create a reservation nobody will resolve.
//! Ids more than 1024 behind the newest are treated as already seen (the sender has long since
//! timed out and rolled them back).

/// Window size in ids.
pub const WINDOW: u32 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// What the window says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: act on it.
    New,
    /// Already seen (or too old to tell): ignore it.
    Duplicate,
}

/// The window for one sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u32,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing (ids start at 1).
    pub const fn new() -> Self {
        Self {
            highest: 0,
            bits: [0; WORDS],
        }
    }

    fn bit(id: u32) -> (usize, u64) {
        let b = id % WINDOW;
        ((b / 64) as usize, 1u64 << (b % 64))
    }

    /// Records `id`; says whether it was new.
    pub fn check_and_mark(&mut self, id: u32) -> Seen {
        if id == 0 {
            return Seen::Duplicate;
        }
        if id > self.highest {
            let advance = id - self.highest;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for old in self.highest + 1..=id {
                    let (w, m) = Self::bit(old);
                    self.bits[w] &= !m;
                }
            }
            self.highest = id;
        } else if self.highest - id >= WINDOW {
            return Seen::Duplicate;
        }
        let (w, m) = Self::bit(id);
        if self.bits[w] & m != 0 {
            Seen::Duplicate
        } else {
            self.bits[w] |= m;
            Seen::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_new_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_mark(1), Seen::New, "first");
        assert_eq!(w.check_and_mark(1), Seen::Duplicate, "copy");
        assert_eq!(w.check_and_mark(5), Seen::New, "jump ahead");
        assert_eq!(w.check_and_mark(3), Seen::New, "late but inside the window");
        assert_eq!(w.check_and_mark(3), Seen::Duplicate, "late copy");
        assert_eq!(w.check_and_mark(0), Seen::Duplicate, "0 is never valid");
    }

    #[test]
    fn too_old_is_dropped_and_the_ring_is_reused() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_mark(2), Seen::New, "2");
        assert_eq!(
            w.check_and_mark(2 + WINDOW),
            Seen::New,
            "a full window later"
        );
        assert_eq!(
            w.check_and_mark(2),
            Seen::Duplicate,
            "older than the window"
        );
        assert_eq!(
            w.check_and_mark(3 + WINDOW),
            Seen::New,
            "same ring bit as 3, cleared on advance"
        );
        assert_eq!(w.check_and_mark(10_000), Seen::New, "big jump clears all");
        assert_eq!(w.check_and_mark(9_999), Seen::New, "inside the new window");
    }
}
