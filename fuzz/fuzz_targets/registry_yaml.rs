//! Any text as a monitors file, and any bytes as a registry topic record:
//! a registry or problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reset_pipeline::registry::Registry;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Registry::parse(text, "monitors.yaml");
    }
    let mut registry = Registry::default();
    let _ = registry.apply(Some("EN_7"), Some(data), "monitor-registry/0@1");
});
