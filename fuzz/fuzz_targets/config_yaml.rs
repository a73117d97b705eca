//! Any text as a config file: a config (then validated) or problems, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reset_pipeline::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = Config::parse(text, "config.yaml") {
            let _ = config.validate("config.yaml");
        }
    }
});
