//! Open-window state: the heap bytes the engine holds per open air
//! monitor-window, counted by a counting allocator over one million open
//! windows (one per monitor). Prints one line; run with
//! `cargo bench --bench open_windows`.

use reset_pipeline::event::SensorEvent;
use reset_pipeline::parameter::Module;
use reset_pipeline::synthetic::{fleet_of, SampleStream};
use reset_pipeline::window::{Engine, EngineSettings};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

const START_MS: i64 = 1_773_532_800_000; // 2026-03-15T00:00:00Z
const INTERVAL_MS: i64 = 10_000;

struct Counting;
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        ALLOCATIONS.fetch_sub(1, Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes held per open air monitor-window, for one million open windows.
fn main() {
    const N: usize = 1_000_000;
    let registry = Arc::new(fleet_of(N, |_| Module::Air));
    let events: Vec<SensorEvent> =
        SampleStream::new(Arc::clone(&registry), START_MS, INTERVAL_MS, 3)
            .take(N)
            .collect();
    let (bytes_before, allocs_before) = (LIVE_BYTES.load(Relaxed), ALLOCATIONS.load(Relaxed));
    let mut engine = Engine::new(registry, EngineSettings::default());
    let mut rejects = Vec::new();
    for (i, e) in events.iter().enumerate() {
        engine.record(i as u64, e, Some(e.event_time), &mut rejects);
    }
    let bytes = LIVE_BYTES.load(Relaxed) - bytes_before;
    let allocs = ALLOCATIONS.load(Relaxed) - allocs_before;
    assert_eq!(engine.open_windows(), N);
    println!(
        "open-window state: {} open air windows, {:.1} bytes each ({:.2} allocations each, requested sizes)",
        N,
        bytes as f64 / N as f64,
        allocs as f64 / N as f64
    );
    drop(engine);
}
