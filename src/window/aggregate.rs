//! Per-window aggregators: the mean, the latest cumulative counter, and the
//! bin weight cut at every emptying. Results never depend on arrival order
//! (beyond floating-point rounding of sums).

use crate::parameter::Aggregation;

/// How an emptying is inferred from a fall in weight between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinRules {
    /// The fall is at least this fraction of the previous weight...
    pub min_fraction: f64,
    /// ...and at least this many kilograms.
    pub min_kg: f64,
}

impl Default for BinRules {
    fn default() -> Self {
        BinRules {
            min_fraction: 0.5,
            min_kg: 1.0,
        }
    }
}

impl BinRules {
    fn is_emptying(&self, previous: f64, next: f64) -> bool {
        let fall = previous - next;
        fall >= self.min_fraction * previous && fall >= self.min_kg
    }
}

/// One bin-weight sample, kept until the window closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinSample {
    pub time: i64,
    pub weight: f64,
    /// The last sample before the bin was emptied.
    pub emptied: bool,
}

/// The running state of one (parameter, channel) in one window.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregator {
    /// Neumaier-compensated sum: the mean barely depends on arrival order,
    /// even when positive and negative samples nearly cancel.
    Mean {
        sum: f64,
        compensation: f64,
        count: u32,
    },
    Latest {
        time: i64,
        value: f64,
    },
    Bin(Vec<BinSample>),
}

/// A slot's value when its window closes.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotValue {
    /// A mean or a counter; `None` when the window had no sample.
    Single(Option<f64>),
    /// Bin weight: the peak of each piece in time order; empty when no sample.
    Pieces(Vec<f64>),
}

impl Aggregator {
    pub fn new(kind: Aggregation) -> Aggregator {
        match kind {
            Aggregation::Mean => Aggregator::Mean {
                sum: 0.0,
                compensation: 0.0,
                count: 0,
            },
            Aggregation::LatestCounter => Aggregator::Latest {
                time: i64::MIN,
                value: f64::NAN,
            },
            Aggregation::BinPieces => Aggregator::Bin(Vec::new()),
        }
    }

    /// Adds a validated, converted sample.
    #[inline]
    pub fn add(&mut self, time: i64, value: f64, emptied: bool) {
        match self {
            Aggregator::Mean {
                sum,
                compensation,
                count,
            } => {
                let total = *sum + value;
                *compensation += if sum.abs() >= value.abs() {
                    (*sum - total) + value
                } else {
                    (value - total) + *sum
                };
                *sum = total;
                *count += 1;
            }
            Aggregator::Latest { time: t, value: v } => {
                // Ties at the same instant keep the larger reading: a counter only grows.
                if time > *t || (time == *t && value > *v) {
                    *t = time;
                    *v = value;
                }
            }
            Aggregator::Bin(samples) => samples.push(BinSample {
                time,
                weight: value,
                emptied,
            }),
        }
    }

    pub fn finish(self, rules: &BinRules) -> SlotValue {
        match self {
            Aggregator::Mean {
                sum,
                compensation,
                count,
            } => SlotValue::Single((count > 0).then(|| (sum + compensation) / f64::from(count))),
            Aggregator::Latest { time, value } => {
                SlotValue::Single((time != i64::MIN).then_some(value))
            }
            Aggregator::Bin(samples) => SlotValue::Pieces(bin_pieces(samples, rules)),
        }
    }
}

/// The peak of every piece of the window, cut at each emptying, in time order.
pub fn bin_pieces(mut samples: Vec<BinSample>, rules: &BinRules) -> Vec<f64> {
    samples.sort_by(|a, b| {
        (a.time, a.emptied)
            .cmp(&(b.time, b.emptied))
            .then(a.weight.total_cmp(&b.weight))
    });
    let mut pieces = Vec::new();
    let mut peak: Option<f64> = None;
    let mut previous: Option<BinSample> = None;
    for s in samples {
        if let Some(p) = previous {
            if !p.emptied && rules.is_emptying(p.weight, s.weight) {
                pieces.extend(peak.take());
            }
        }
        peak = Some(peak.map_or(s.weight, |m| m.max(s.weight)));
        if s.emptied {
            pieces.extend(peak.take());
        }
        previous = Some(s);
    }
    pieces.extend(peak);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin(samples: &[(i64, f64, bool)]) -> Vec<f64> {
        let mut a = Aggregator::new(Aggregation::BinPieces);
        for &(t, w, e) in samples {
            a.add(t, w, e);
        }
        match a.finish(&BinRules::default()) {
            SlotValue::Pieces(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mean_skips_nothing_it_was_given_and_is_null_when_empty() {
        let mut a = Aggregator::new(Aggregation::Mean);
        assert_eq!(
            a.clone().finish(&BinRules::default()),
            SlotValue::Single(None)
        );
        for v in [1.0, 2.0, 6.0] {
            a.add(0, v, false);
        }
        assert_eq!(a.finish(&BinRules::default()), SlotValue::Single(Some(3.0)));
    }

    #[test]
    fn the_mean_survives_cancellation_in_any_order() {
        let values = [1e16, 1.0, -1e16, 3.0, 2.0];
        let mean = |order: &[usize]| {
            let mut a = Aggregator::new(Aggregation::Mean);
            for &i in order {
                a.add(0, values[i], false);
            }
            a.finish(&BinRules::default())
        };
        // A plain running sum loses the 1.0 in the first order and gives a mean of 1.0.
        assert_eq!(mean(&[0, 1, 2, 3, 4]), SlotValue::Single(Some(1.2)));
        assert_eq!(mean(&[1, 0, 3, 2, 4]), SlotValue::Single(Some(1.2)));
        assert_eq!(mean(&[4, 3, 1, 0, 2]), SlotValue::Single(Some(1.2)));
    }

    #[test]
    fn latest_counter_is_by_event_time_not_arrival() {
        let mut a = Aggregator::new(Aggregation::LatestCounter);
        a.add(30, 130.0, false);
        a.add(10, 110.0, false);
        a.add(20, 120.0, false);
        assert_eq!(
            a.finish(&BinRules::default()),
            SlotValue::Single(Some(130.0))
        );
    }

    #[test]
    fn bin_without_emptying_is_the_window_max() {
        assert_eq!(
            bin(&[(1, 3.0, false), (2, 7.5, false), (3, 7.0, false)]),
            [7.5]
        );
    }

    #[test]
    fn bin_with_a_flagged_emptying() {
        // 8 kg flagged as the last sample before emptying, then it refills to 9.
        let s = [
            (1, 5.0, false),
            (2, 8.0, true),
            (3, 0.5, false),
            (4, 9.0, false),
        ];
        assert_eq!(bin(&s), [8.0, 9.0]);
    }

    #[test]
    fn bin_with_an_inferred_emptying() {
        let s = [
            (1, 6.0, false),
            (2, 10.0, false),
            (3, 2.0, false),
            (4, 4.0, false),
        ];
        assert_eq!(bin(&s), [10.0, 4.0]);
        // A small fall is not an emptying: under 1 kg, or under half the weight.
        assert_eq!(bin(&[(1, 1.5, false), (2, 0.6, false)]), [1.5]);
        assert_eq!(bin(&[(1, 10.0, false), (2, 6.0, false)]), [10.0]);
    }

    #[test]
    fn bin_with_two_emptyings_in_one_window() {
        let s = [
            (1, 4.0, false),
            (2, 12.0, true),
            (3, 1.0, false),
            (4, 11.0, false),
            (5, 0.0, false),
            (6, 3.0, false),
        ];
        assert_eq!(bin(&s), [12.0, 11.0, 3.0]);
    }

    #[test]
    fn bin_that_ends_lighter_than_before() {
        let s = [
            (1, 20.0, false),
            (2, 25.0, false),
            (3, 2.0, false),
            (4, 3.0, false),
        ];
        assert_eq!(bin(&s), [25.0, 3.0]);
    }

    #[test]
    fn a_fall_right_after_a_flag_is_the_same_emptying() {
        let s = [(1, 9.0, true), (2, 0.0, false), (3, 0.5, false)];
        assert_eq!(bin(&s), [9.0, 0.5]);
        // Flagged as the window's last sample: one piece, nothing after it.
        assert_eq!(bin(&[(1, 3.0, false), (2, 9.0, true)]), [9.0]);
    }

    #[test]
    fn bin_pieces_do_not_depend_on_arrival_order() {
        let s = [
            (4, 11.0, false),
            (1, 4.0, false),
            (3, 1.0, false),
            (2, 12.0, true),
        ];
        assert_eq!(bin(&s), [12.0, 11.0]);
    }
}
