//! From a raw measurement to a value the window can take: the parameter must
//! be declared, the value a finite number, convertible to the declared unit
//! and physically possible.

use crate::event::{Measurement, SampleValue};
use crate::parameter::{convert, Parameter, Unit};
use crate::registry::Monitor;
use crate::reject::RejectReason;

/// What becomes of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A value in the declared unit, for this parameter.
    Accepted(Parameter, f64),
    /// A declared parameter with no value: the sample counts, the value does not.
    Null(Parameter),
    /// A parameter the monitor does not declare: ignored and counted, not rejected.
    Undeclared,
    /// Rejected, with the reason and a human explanation.
    Rejected(RejectReason, String),
}

/// Judges one measurement against the monitor's declaration.
#[inline]
pub fn normalize(monitor: &Monitor, m: &Measurement) -> Outcome {
    let Some((parameter, declared)) =
        Parameter::parse(&m.parameter).and_then(|p| monitor.declared_unit(p).map(|u| (p, u)))
    else {
        return Outcome::Undeclared;
    };
    let raw = match &m.value {
        SampleValue::Null => return Outcome::Null(parameter),
        SampleValue::Invalid(text) => {
            return Outcome::Rejected(
                RejectReason::NotANumber,
                format!("{parameter} value {text:?} is not a number"),
            )
        }
        SampleValue::Number(v) => *v,
    };
    if !raw.is_finite() {
        return Outcome::Rejected(
            RejectReason::NotFinite,
            format!("{parameter} value {raw} is not a finite number"),
        );
    }
    let value = match m.unit.as_deref() {
        None => raw,
        Some(text) => match Unit::parse(text).and_then(|u| convert(raw, u, declared)) {
            Ok(v) => v,
            Err(e) => return Outcome::Rejected(RejectReason::Unit, format!("{parameter}: {e}")),
        },
    };
    let bounds = parameter.bounds();
    if !(value >= bounds.min && value <= bounds.max) {
        return Outcome::Rejected(
            RejectReason::Impossible,
            format!(
                "{parameter} {value} {} is outside {}..{}",
                declared.name(),
                bounds.min,
                bounds.max
            ),
        );
    }
    Outcome::Accepted(parameter, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn air() -> Monitor {
        let yaml = "monitors:\n  - {connection_id: A, module: air, timezone: UTC, monitor_brand: B, monitor_sku: S, monitor_serial_id: X, parameters: {pm2p5: ug/m3, tvoc: ppb, temp: C, rh: '%RH'}}\n";
        let r = Registry::parse(yaml, "m.yaml").unwrap();
        r.get(0).clone()
    }

    fn judge(p: &str, v: SampleValue, unit: Option<&str>) -> Outcome {
        normalize(
            &air(),
            &Measurement {
                parameter: p.into(),
                value: v,
                unit: unit.map(str::to_string),
            },
        )
    }

    use SampleValue::*;

    #[test]
    fn converts_into_the_declared_unit() {
        assert_eq!(
            judge("temp", Number(212.0), Some("°F")),
            Outcome::Accepted(Parameter::Temp, 100.0)
        );
        assert_eq!(
            judge("pm2p5", Number(0.01), Some("mg/m3")),
            Outcome::Accepted(Parameter::Pm2p5, 10.0)
        );
        assert_eq!(
            judge("temp", Number(21.5), None),
            Outcome::Accepted(Parameter::Temp, 21.5)
        );
    }

    #[test]
    fn rejects_each_kind_of_bad_sample_with_its_reason() {
        let reason = |o: Outcome| match o {
            Outcome::Rejected(r, _) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(judge("rh", Number(f64::NAN), None)),
            RejectReason::NotFinite
        );
        assert_eq!(
            reason(judge("rh", Invalid("wet".into()), None)),
            RejectReason::NotANumber
        );
        assert_eq!(
            reason(judge("rh", Number(101.0), None)),
            RejectReason::Impossible
        );
        assert_eq!(
            reason(judge("pm2p5", Number(-1.0), None)),
            RejectReason::Impossible
        );
        assert_eq!(
            reason(judge("tvoc", Number(1.0), Some("mg/m3"))),
            RejectReason::Unit
        );
        assert_eq!(
            reason(judge("temp", Number(1.0), Some("parsecs"))),
            RejectReason::Unit
        );
        assert_eq!(
            reason(judge("temp", Number(-300.0), None)),
            RejectReason::Impossible
        );
    }

    #[test]
    fn undeclared_parameters_are_ignored_and_nulls_kept() {
        assert_eq!(judge("co2", Number(400.0), None), Outcome::Undeclared);
        assert_eq!(judge("noise", Number(40.0), None), Outcome::Undeclared);
        assert_eq!(judge("rh", Null, None), Outcome::Null(Parameter::Rh));
    }
}
