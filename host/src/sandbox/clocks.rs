//! The clocks a guest sees: virtual, and the same in every run. Time starts at zero when the
//! instance is made (the wall clock at 2000-01-01T00:00:00Z) and moves only as the guest uses
//! it: each reading advances it by [`TICK_NS`], and a wait — a sleep, a pollable for a later
//! instant — is over at once, the clock jumping to its end. A model can time itself and sleep
//! (CPython does both as it starts), but learns nothing of the host's time and cannot wait out
//! its deadline: no pollable it makes ever blocks.

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration, Instant};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::{self, Datetime};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

/// Nanoseconds one reading of a clock takes, virtually (its resolution).
pub const TICK_NS: u64 = 1_000;

/// The wall clock's reading at virtual time zero: 2000-01-01T00:00:00Z, in Unix seconds.
const WALL_CLOCK_START: u64 = 946_684_800;

/// Nanoseconds in a second.
const NS_PER_SECOND: u64 = 1_000_000_000;

/// One instance's virtual time, in nanoseconds since it was made.
#[derive(Debug, Default)]
pub struct VirtualClock {
    now_ns: u64,
}

impl VirtualClock {
    /// The time, one tick later than the last reading.
    fn read(&mut self) -> u64 {
        self.now_ns = self.now_ns.saturating_add(TICK_NS);
        self.now_ns
    }

    /// Moves the time on to `instant`, if that is later.
    fn advance_to(&mut self, instant: u64) {
        self.now_ns = self.now_ns.max(instant);
    }
}

/// The clock interfaces' host state: the instance's virtual clock and its resource table.
pub struct GuestClocks;

impl HasData for GuestClocks {
    type Data<'a> = ClockView<'a>;
}

/// What the clock interfaces work on.
pub struct ClockView<'a> {
    /// The instance's virtual time.
    pub clock: &'a mut VirtualClock,
    /// The instance's resources, where its pollables live.
    pub table: &'a mut ResourceTable,
}

impl ClockView<'_> {
    /// A pollable that is ready at once: the clock has already jumped to its instant.
    fn elapsed(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let resource = self.table.push(Elapsed)?;
        subscribe(self.table, resource)
    }
}

impl monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        Ok(self.clock.read())
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        Ok(TICK_NS)
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        self.clock.advance_to(when);
        self.elapsed()
    }

    fn subscribe_duration(&mut self, when: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let end = self.clock.now_ns.saturating_add(when);
        self.clock.advance_to(end);
        self.elapsed()
    }
}

impl wall_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<Datetime> {
        let now = self.clock.read();
        Ok(Datetime {
            seconds: WALL_CLOCK_START.saturating_add(now / NS_PER_SECOND),
            nanoseconds: u32::try_from(now % NS_PER_SECOND).unwrap_or(0),
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<Datetime> {
        Ok(Datetime {
            seconds: 0,
            nanoseconds: u32::try_from(TICK_NS).unwrap_or(u32::MAX),
        })
    }
}

/// A wait that is already over.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}
