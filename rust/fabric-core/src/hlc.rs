//! Hybrid logical clock (Kulkarni et al., 2014) with the simulation tick as physical time.
//!
//! A timestamp is `(l, c)`: `l` is the largest tick seen (local or from a message), `c` a counter
//! that orders events within one `l`. The zone core never reads a clock: the tick number comes in
//! as an argument to [`HybridClock::tick`]. Migration uses the HLC to decide when an arrival takes
//! effect (`arrival_hlc <= current`), so a zone never acts on an entity "from the future".
//!
//! Wire forms: the full 64-bit form `l << 16 | c` (migration intents), and the 32-bit form of the
//! original entity row, `(l & 0xFFFFFF) << 8 | min(c, 255)`.
//!
//! If the counter would overflow within one tick, `l` is advanced by one and `c` restarts: order is
//! kept, at the cost of `l` running one tick ahead of the physical tick for a moment.

/// A hybrid logical timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hlc {
    /// Logical physical part: a tick number (48 bits are kept on the wire).
    pub l: u64,
    /// Counter within `l`.
    pub c: u16,
}

/// Mask of the 48 bits of `l` kept in the 64-bit wire form.
pub const L_MASK: u64 = (1 << 48) - 1;

impl Hlc {
    /// The timestamp at the start of tick `l`.
    pub const fn at_tick(l: u64) -> Self {
        Self { l, c: 0 }
    }

    /// 64-bit wire form `l << 16 | c` (`l` truncated to 48 bits).
    pub const fn to_u64(self) -> u64 {
        ((self.l & L_MASK) << 16) | self.c as u64
    }

    /// Inverse of [`Self::to_u64`].
    pub const fn from_u64(v: u64) -> Self {
        Self {
            l: v >> 16,
            c: (v & 0xffff) as u16,
        }
    }

    /// 32-bit form of the original entity row: `(l & 0xFFFFFF) << 8 | min(c, 255)`.
    pub const fn to_row_u32(self) -> u32 {
        let c = if self.c > 255 { 255 } else { self.c as u32 };
        (((self.l & 0xff_ffff) as u32) << 8) | c
    }

    /// The timestamp a 32-bit row form ([`Self::to_row_u32`]) stands for: the row keeps only
    /// the low 24 bits of `l`, so it is read as the latest `l` with those bits that is at most
    /// `limit` (a tick known to be at or after it). `None` for 0 (never stamped) and for an `l`
    /// that would be negative. The counter is the row's (at most 255).
    pub const fn from_row_u32_before(row: u32, limit: u64) -> Option<Self> {
        if row == 0 {
            return None;
        }
        let low = (row >> 8) as u64;
        let mut l = (limit & !0xff_ffff) | low;
        if l > limit {
            if l < 1 << 24 {
                return None;
            }
            l -= 1 << 24;
        }
        Some(Self {
            l,
            c: (row & 0xff) as u16,
        })
    }

    /// This timestamp plus `ticks` of physical time (counter reset).
    pub const fn plus_ticks(self, ticks: u64) -> Self {
        Self {
            l: self.l + ticks,
            c: 0,
        }
    }
}

/// A zone's hybrid logical clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HybridClock {
    now: Hlc,
}

impl HybridClock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current timestamp, without advancing.
    pub fn now(&self) -> Hlc {
        self.now
    }

    /// Restarts the clock no earlier than `at_least` (what a zone journaled or saved before a
    /// restart): it never goes backwards across one.
    pub fn restore(&mut self, at_least: Hlc) {
        if at_least > self.now {
            self.now = at_least;
        }
    }

    /// Physical time advanced to tick `tick` (a local event with no message).
    pub fn tick(&mut self, tick: u64) -> Hlc {
        if tick > self.now.l {
            self.now = Hlc::at_tick(tick);
        }
        self.now
    }

    /// Timestamp for a message sent now: strictly greater than any earlier one.
    pub fn send(&mut self, tick: u64) -> Hlc {
        if tick > self.now.l {
            self.now = Hlc::at_tick(tick);
        } else {
            self.bump();
        }
        self.now
    }

    /// Merges a received timestamp: the result is greater than both the local and the remote one.
    pub fn recv(&mut self, tick: u64, remote: Hlc) -> Hlc {
        let l = tick.max(self.now.l).max(remote.l);
        if l == self.now.l && l == remote.l {
            self.now.c = self.now.c.max(remote.c);
            self.bump();
        } else if l == self.now.l {
            self.bump();
        } else if l == remote.l {
            self.now = remote;
            self.bump();
        } else {
            self.now = Hlc::at_tick(l);
        }
        self.now
    }

    fn bump(&mut self) {
        if self.now.c == u16::MAX {
            self.now = Hlc::at_tick(self.now.l + 1);
        } else {
            self.now.c += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_forms() {
        let h = Hlc {
            l: 0x1234_5678,
            c: 3,
        };
        assert_eq!(h.to_u64(), 0x1234_5678_0003, "l << 16 | c");
        assert_eq!(Hlc::from_u64(h.to_u64()), h, "u64 round trip");
        assert_eq!(
            h.to_row_u32(),
            0x3456_7803,
            "row form keeps 24 bits of l and 8 of c"
        );
        assert_eq!(
            Hlc { l: 1, c: 300 }.to_row_u32(),
            0x1ff,
            "row counter saturates at 255"
        );
    }

    #[test]
    fn send_is_monotonic_within_a_tick() {
        let mut clk = HybridClock::new();
        let a = clk.send(10);
        let b = clk.send(10);
        assert_eq!(a, Hlc { l: 10, c: 0 }, "first event of tick 10");
        assert_eq!(b, Hlc { l: 10, c: 1 }, "second event counts up");
        assert_eq!(
            clk.tick(11),
            Hlc { l: 11, c: 0 },
            "new tick resets the counter"
        );
    }

    #[test]
    fn receive_from_the_future_adopts_the_remote_time() {
        let mut clk = HybridClock::new();
        clk.tick(5);
        let r = clk.recv(5, Hlc { l: 9, c: 4 });
        assert_eq!(
            r,
            Hlc { l: 9, c: 5 },
            "remote l, counter above the remote's"
        );
        assert_eq!(
            clk.tick(7),
            r,
            "physical tick 7 does not move the clock back"
        );
    }

    #[test]
    fn counter_overflow_advances_l() {
        let mut clk = HybridClock::new();
        clk.recv(
            1,
            Hlc {
                l: 1,
                c: u16::MAX - 1,
            },
        );
        assert_eq!(
            clk.send(1),
            Hlc { l: 2, c: 0 },
            "overflow moves to the next l"
        );
    }

    proptest! {
        #[test]
        fn every_event_is_strictly_later(events in proptest::collection::vec((0u64..50, any::<bool>(), 0u64..60, any::<u16>()), 1..100)) {
            let mut clk = HybridClock::new();
            let mut last = clk.now();
            let mut tick = 0;
            for (dt, is_recv, rl, rc) in events {
                tick += dt % 3;
                let now = if is_recv {
                    let remote = Hlc { l: rl, c: rc };
                    let n = clk.recv(tick, remote);
                    prop_assert!(n > remote, "after receive {:?} > remote {:?}", n, remote);
                    n
                } else {
                    clk.send(tick)
                };
                prop_assert!(now > last, "{:?} > {:?}", now, last);
                prop_assert!(now.l >= tick);
                last = now;
            }
        }
    }

    #[cfg(test)]
    mod restore_tests {
        use super::*;

        #[test]
        fn a_row_hlc_is_read_back_relative_to_a_later_tick() {
            let h = Hlc {
                l: 0x0012_3456_789a,
                c: 7,
            };
            let row = h.to_row_u32();
            assert_eq!(
                Hlc::from_row_u32_before(row, h.l),
                Some(h),
                "at its own tick"
            );
            assert_eq!(Hlc::from_row_u32_before(row, h.l + 1000), Some(h), "later");
            assert_eq!(
                Hlc::from_row_u32_before(row, h.l - 1),
                Some(Hlc {
                    l: h.l - (1 << 24),
                    c: 7
                }),
                "a limit before it reads the previous wrap"
            );
            assert_eq!(Hlc::from_row_u32_before(0, 99), None, "never stamped");
            assert_eq!(
                Hlc::from_row_u32_before(Hlc { l: 50, c: 0 }.to_row_u32(), 10),
                None
            );
        }

        #[test]
        fn a_restored_clock_never_goes_back() {
            let mut c = HybridClock::new();
            c.restore(Hlc { l: 500, c: 3 });
            assert_eq!(
                c.tick(400),
                Hlc { l: 500, c: 3 },
                "a tick before it does not move it"
            );
            assert!(
                c.send(401) > Hlc { l: 500, c: 3 },
                "messages stamp after it"
            );
            c.restore(Hlc { l: 10, c: 0 });
            assert!(
                c.now() > Hlc { l: 500, c: 3 },
                "restoring an older value does nothing"
            );
        }
    }
}
