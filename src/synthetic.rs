//! A synthetic fleet and its sample stream, deterministic from a seed: for the
//! demo, the benchmarks and the tests.

use crate::event::{Measurement, SensorEvent};
use crate::parameter::Module;
use crate::registry::{ChannelRecord, Monitor, MonitorRecord, Registry};
use std::sync::Arc;

const ZONES: &[&str] = &[
    "Asia/Shanghai",
    "America/New_York",
    "Europe/London",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "UTC",
];

/// The module of the i-th synthetic monitor: 7 in 10 air, then one each of the others.
pub fn module_of(i: usize) -> Module {
    match i % 10 {
        7 => Module::Water,
        8 => Module::Energy,
        9 => Module::Circularity,
        _ => Module::Air,
    }
}

/// The record of the i-th synthetic monitor of a module mix.
pub fn monitor_record(i: usize, module: Module) -> MonitorRecord {
    let params: &[(&str, &str)] = match module {
        Module::Air => &[
            ("pm2p5", "ug/m3"),
            ("tvoc", "ppb"),
            ("co2", "ppm"),
            ("temp", "C"),
            ("rh", "%RH"),
        ],
        Module::Water => &[("water_flow", "L"), ("water_temp", "C")],
        Module::Energy => &[("power_consumption", "kWh")],
        Module::Circularity => &[("bin_weight", "kg")],
    };
    let channels = match module {
        Module::Air => vec![],
        Module::Circularity => vec!["c01"],
        _ => vec!["c01", "c02"],
    };
    let prefix = &module.name()[..2].to_uppercase();
    MonitorRecord {
        connection_id: format!("{prefix}_{i:06}"),
        module: module.name().into(),
        timezone: ZONES[i % ZONES.len()].into(),
        label: None,
        monitor_brand: "SYNTH".into(),
        monitor_sku: format!("{prefix}-1"),
        monitor_serial_id: format!("S{i:06}"),
        last_monitor_calibration_date: None,
        parameters: params
            .iter()
            .map(|(p, u)| (p.to_string(), u.to_string()))
            .collect(),
        channels: channels
            .into_iter()
            .map(|c| ChannelRecord {
                channel_id: c.into(),
                channel_label: None,
            })
            .collect(),
    }
}

/// A fleet of `n` monitors of mixed modules.
pub fn fleet(n: usize) -> Registry {
    fleet_of(n, module_of)
}

/// A fleet of `n` monitors whose modules `module` chooses.
pub fn fleet_of(n: usize, module: impl Fn(usize) -> Module) -> Registry {
    let mut registry = Registry::default();
    for i in 0..n {
        let record = monitor_record(i, module(i));
        let monitor =
            Monitor::from_record(record, &"synthetic").expect("synthetic monitors are valid");
        registry.insert(monitor);
    }
    registry
}

/// Every monitor of a fleet sampling every `interval_ms`, in event-time order.
pub struct SampleStream {
    registry: Arc<Registry>,
    time: i64,
    interval_ms: i64,
    next_monitor: usize,
    tick: u64,
    counters: Vec<f64>,
    rng: u64,
}

impl SampleStream {
    pub fn new(registry: Arc<Registry>, start_ms: i64, interval_ms: i64, seed: u64) -> Self {
        let counters = vec![0.0; registry.len() * 2];
        SampleStream {
            registry,
            time: start_ms,
            interval_ms,
            next_monitor: 0,
            tick: 0,
            counters,
            rng: seed | 1,
        }
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        low + (high - low) * (x as f64 / (1u64 << 53) as f64)
    }

    fn round(v: f64) -> f64 {
        (v * 100.0).round() / 100.0
    }
}

impl Iterator for SampleStream {
    type Item = SensorEvent;

    fn next(&mut self) -> Option<SensorEvent> {
        if self.registry.is_empty() {
            return None;
        }
        if self.next_monitor == self.registry.len() {
            self.next_monitor = 0;
            self.tick += 1;
            self.time += self.interval_ms;
        }
        let i = self.next_monitor;
        self.next_monitor += 1;
        let registry = Arc::clone(&self.registry);
        let monitor = registry.get(i as u32);
        // Spread a monitor's samples over the interval, in a fixed order.
        let t = self.time + (i as i64 * 7919) % self.interval_ms.max(1);
        let channel = (self.tick as usize) % monitor.channel_count();
        let counter = i * 2 + channel;
        let m = |p: &str, v: f64| Measurement::new(p, Some(Self::round(v)), None);
        let mut bin_emptied = false;
        let measurements = match monitor.module {
            Module::Air => vec![
                m("pm2p5", self.uniform(5.0, 40.0)),
                m("tvoc", self.uniform(100.0, 400.0)),
                m("co2", self.uniform(400.0, 1200.0)),
                m("temp", self.uniform(18.0, 26.0)),
                m("rh", self.uniform(30.0, 60.0)),
            ],
            Module::Water => {
                self.counters[counter] += self.uniform(0.0, 5.0);
                vec![
                    m("water_flow", self.counters[counter]),
                    m("water_temp", self.uniform(10.0, 50.0)),
                ]
            }
            Module::Energy => {
                self.counters[counter] += self.uniform(0.0, 0.2);
                vec![m("power_consumption", self.counters[counter])]
            }
            Module::Circularity => {
                self.counters[counter] += self.uniform(0.0, 0.5);
                let weight = self.counters[counter];
                if weight > 30.0 {
                    bin_emptied = true;
                    self.counters[counter] = 0.0;
                }
                vec![m("bin_weight", weight)]
            }
        };
        Some(SensorEvent {
            connection_id: monitor.connection_id().to_string(),
            event_time: t,
            channel_id: monitor
                .channel_ids
                .get(channel)
                .map(|c| c.as_str().to_string()),
            measurements,
            bin_emptied,
        })
    }
}
