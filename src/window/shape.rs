//! A monitor's earlier shapes (module, zone, parameters, units, channels),
//! each with the last instant it covers: a shape change applies only to
//! samples after the monitor's latest one read, so that no window that may
//! have been sent is ever rebuilt with another shape. Pure.

use super::clock::window_end;
use crate::registry::Monitor;
use std::sync::Arc;

/// One shape of a monitor, compared by description.
#[derive(Debug, Clone)]
pub struct Shape(pub Arc<Monitor>);

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.record == other.0.record
    }
}

/// An earlier shape and the end of its last window: samples at or before
/// `until` take it.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub until: i64,
    pub shape: Shape,
}

/// `until` of an epoch still open: it takes every sample until it ends.
const OPEN: i64 = i64::MAX;

/// A monitor's earlier shapes, oldest first. A sample takes the first whose
/// `until` is at or after its time, else the registry's shape. Most
/// monitors have none: one pointer, null then, keeps the engine's state of
/// a monitor within one cache line (`engine::MonitorWindows`).
#[derive(Debug, Default)]
pub struct Epochs(Option<Box<[Epoch]>>);

impl Epochs {
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn list(&self) -> &[Epoch] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// Changes the list, and lets it go when `change` leaves it empty.
    fn change<R>(&mut self, change: impl FnOnce(&mut Vec<Epoch>) -> R) -> R {
        let mut list = self.0.take().map_or_else(Vec::new, Vec::from);
        let result = change(&mut list);
        self.0 = (!list.is_empty()).then(|| list.into_boxed_slice());
        result
    }

    /// The earlier shape a sample at `t` takes, if any.
    pub fn shape_at(&self, t: i64) -> Option<&Shape> {
        self.list().iter().find(|e| t <= e.until).map(|e| &e.shape)
    }

    /// Earlier shapes as the announcements store kept them.
    pub fn load(&mut self, epochs: impl IntoIterator<Item = Epoch>) {
        self.change(|list| {
            list.extend(epochs);
            list.sort_by_key(|e| e.until);
        });
    }

    /// Every sample takes `shape` until `end` says from where it no longer
    /// does (an epoch already open stays as it is).
    pub fn begin(&mut self, shape: Shape) {
        if !self.is_open() {
            self.change(|list| list.push(Epoch { until: OPEN, shape }));
        }
    }

    pub fn is_open(&self) -> bool {
        self.list().last().is_some_and(|e| e.until == OPEN)
    }

    /// Ends the open epoch with the window of `latest`, the monitor's latest
    /// sample read: later samples take the registry's shape. The epoch, if
    /// it covers anything (it is dropped when no sample of the monitor was
    /// read, or none after the epoch before it).
    pub fn end(&mut self, latest: Option<i64>) -> Option<Epoch> {
        if !self.is_open() {
            return None;
        }
        self.change(|list| {
            let open = list.pop().expect("an open epoch");
            let before = list.last().map_or(i64::MIN, |e| e.until);
            let until = window_end(&open.shape.0.tz, latest?);
            (until > before).then(|| {
                let epoch = Epoch {
                    until,
                    shape: open.shape,
                };
                list.push(epoch.clone());
                epoch
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn shape(tz: &str) -> Shape {
        let yaml = format!("monitors:\n  - {{connection_id: A, module: air, timezone: {tz}, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {{co2: ppm}}}}\n");
        Shape(Arc::new(
            Registry::parse(&yaml, "m.yaml").unwrap().get(0).clone(),
        ))
    }

    const T0: i64 = 1_780_000_200_000; // a window end in UTC and in Kolkata

    #[test]
    fn an_open_epoch_takes_every_sample_and_ends_with_the_window_of_the_latest() {
        let mut epochs = Epochs::default();
        epochs.begin(shape("Asia/Kathmandu"));
        assert!(epochs.shape_at(i64::MAX - 1).is_some());
        // Kathmandu's windows end at :15 and :45 UTC.
        let ended = epochs.end(Some(T0 + 1)).unwrap();
        assert_eq!(ended.until, T0 + 15 * 60_000);
        assert_eq!(
            epochs.shape_at(T0 + 15 * 60_000),
            Some(&shape("Asia/Kathmandu"))
        );
        assert_eq!(epochs.shape_at(T0 + 15 * 60_000 + 1), None);
        assert!(!epochs.is_open());
    }

    #[test]
    fn an_epoch_without_samples_of_its_own_is_dropped() {
        let mut epochs = Epochs::default();
        epochs.begin(shape("UTC"));
        assert_eq!(epochs.end(None), None);
        assert!(epochs.is_empty());
        epochs.load([Epoch {
            until: T0,
            shape: shape("UTC"),
        }]);
        epochs.begin(shape("Asia/Kolkata"));
        assert_eq!(epochs.end(Some(T0 - 1)), None, "nothing read after T0");
        assert_eq!(epochs.shape_at(T0), Some(&shape("UTC")));
        assert_eq!(epochs.shape_at(T0 + 1), None);
    }

    #[test]
    fn loaded_epochs_apply_oldest_first_and_an_open_one_is_not_reopened() {
        let mut epochs = Epochs::default();
        epochs.load([
            Epoch {
                until: T0 + 1_800_000,
                shape: shape("Asia/Kolkata"),
            },
            Epoch {
                until: T0,
                shape: shape("UTC"),
            },
        ]);
        assert_eq!(epochs.shape_at(T0 - 5), Some(&shape("UTC")));
        assert_eq!(epochs.shape_at(T0 + 5), Some(&shape("Asia/Kolkata")));
        epochs.begin(shape("Europe/Paris"));
        epochs.begin(shape("America/New_York"));
        assert_eq!(
            epochs.shape_at(T0 + 3_600_000),
            Some(&shape("Europe/Paris"))
        );
    }
}
