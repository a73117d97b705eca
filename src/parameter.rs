//! RESET's vocabulary: modules, parameters, the units RESET accepts, and how
//! a sample's unit converts into the unit a monitor declared.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A RESET module. Air monitors have no channels; the others need at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Air,
    Water,
    Energy,
    Circularity,
}

impl Module {
    pub const ALL: [Module; 4] = [
        Module::Air,
        Module::Water,
        Module::Energy,
        Module::Circularity,
    ];

    /// The name with its article, for messages: "an air", "a water".
    pub fn with_article(self) -> &'static str {
        match self {
            Module::Air => "an air",
            Module::Water => "a water",
            Module::Energy => "an energy",
            Module::Circularity => "a circularity",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Module::Air => "air",
            Module::Water => "water",
            Module::Energy => "energy",
            Module::Circularity => "circularity",
        }
    }

    pub fn parse(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.name() == name)
    }

    pub fn has_channels(self) -> bool {
        self != Module::Air
    }

    /// The parameters this module may declare, in the order readings list them.
    pub fn parameters(self) -> &'static [Parameter] {
        use Parameter::*;
        match self {
            Module::Air => &[Pm2p5, Tvoc, Co2, Temp, Rh, Pm10],
            Module::Water => &[WaterFlow, WaterTemp, Tds, Orp, Ph],
            Module::Energy => &[PowerConsumption],
            Module::Circularity => &[BinWeight],
        }
    }

    /// Whether every reading must carry this parameter (null when the window had no sample).
    pub fn requires(self, parameter: Parameter) -> bool {
        use Parameter::*;
        matches!(
            (self, parameter),
            (Module::Air, Pm2p5 | Tvoc | Co2 | Temp | Rh)
                | (Module::Water, WaterFlow | WaterTemp)
                | (Module::Energy, PowerConsumption)
                | (Module::Circularity, BinWeight)
        )
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a parameter's samples become the window's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Arithmetic mean of the non-null samples.
    Mean,
    /// A cumulative counter: the latest sample by event time.
    LatestCounter,
    /// Bin weight: the window is cut at every emptying, max of each piece.
    BinPieces,
}

/// A RESET parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Parameter {
    Pm2p5,
    Tvoc,
    Co2,
    Temp,
    Rh,
    Pm10,
    WaterFlow,
    WaterTemp,
    Tds,
    Orp,
    Ph,
    PowerConsumption,
    BinWeight,
}

/// The physical bounds a converted sample must respect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: f64,
    pub max: f64,
}

impl Parameter {
    pub const COUNT: usize = 13;

    pub fn name(self) -> &'static str {
        use Parameter::*;
        match self {
            Pm2p5 => "pm2p5",
            Tvoc => "tvoc",
            Co2 => "co2",
            Temp => "temp",
            Rh => "rh",
            Pm10 => "pm10",
            WaterFlow => "water_flow",
            WaterTemp => "water_temp",
            Tds => "tds",
            Orp => "orp",
            Ph => "ph",
            PowerConsumption => "power_consumption",
            BinWeight => "bin_weight",
        }
    }

    pub fn parse(name: &str) -> Option<Parameter> {
        use Parameter::*;
        Some(match name {
            "pm2p5" => Pm2p5,
            "tvoc" => Tvoc,
            "co2" => Co2,
            "temp" => Temp,
            "rh" => Rh,
            "pm10" => Pm10,
            "water_flow" => WaterFlow,
            "water_temp" => WaterTemp,
            "tds" => Tds,
            "orp" => Orp,
            "ph" => Ph,
            "power_consumption" => PowerConsumption,
            "bin_weight" => BinWeight,
            _ => return None,
        })
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn aggregation(self) -> Aggregation {
        match self {
            Parameter::WaterFlow | Parameter::PowerConsumption => Aggregation::LatestCounter,
            Parameter::BinWeight => Aggregation::BinPieces,
            _ => Aggregation::Mean,
        }
    }

    /// The units RESET accepts for this parameter, spelled as RESET spells them.
    pub fn reset_units(self) -> &'static [Unit] {
        use Parameter::*;
        match self {
            Pm2p5 | Pm10 => &[Unit::MicrogramPerM3],
            Tvoc => &[Unit::Ppb, Unit::MilligramPerM3],
            Co2 | Tds => &[Unit::Ppm],
            Temp | WaterTemp => &[Unit::Celsius],
            Rh => &[Unit::PercentRh],
            WaterFlow => &[Unit::Litre],
            Orp => &[Unit::Millivolt],
            Ph => &[Unit::Ph],
            PowerConsumption => &[Unit::KilowattHour],
            BinWeight => &[Unit::Kilogram],
        }
    }

    /// Values outside these bounds are physically impossible and rejected.
    pub fn bounds(self) -> Bounds {
        use Parameter::*;
        let (min, max) = match self {
            Pm2p5 | Pm10 | Tvoc | Co2 | Tds | WaterFlow | PowerConsumption | BinWeight => {
                (0.0, f64::INFINITY)
            }
            Rh => (0.0, 100.0),
            Temp | WaterTemp => (-273.15, f64::INFINITY),
            Ph => (0.0, 14.0),
            Orp => (f64::NEG_INFINITY, f64::INFINITY),
        };
        Bounds { min, max }
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A unit a device may measure in. The first ones are RESET's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    MicrogramPerM3,
    MilligramPerM3,
    Ppb,
    Ppm,
    Celsius,
    PercentRh,
    Litre,
    Millivolt,
    Ph,
    KilowattHour,
    Kilogram,
    Fahrenheit,
    Kelvin,
    UsGallon,
    CubicMetre,
    WattHour,
    MegawattHour,
    Pound,
    Gram,
}

/// Why a sample's unit cannot be turned into the declared one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("unknown unit {0:?}")]
    Unknown(String),
    #[error("{from} cannot be converted to {to}")]
    Incompatible {
        from: &'static str,
        to: &'static str,
    },
}

impl Unit {
    /// RESET's spelling (for RESET's units) or a conventional one.
    pub fn name(self) -> &'static str {
        use Unit::*;
        match self {
            MicrogramPerM3 => "ug/m3",
            MilligramPerM3 => "mg/m3",
            Ppb => "ppb",
            Ppm => "ppm",
            Celsius => "C",
            PercentRh => "%RH",
            Litre => "L",
            Millivolt => "mv",
            Ph => "ph",
            KilowattHour => "kWh",
            Kilogram => "kg",
            Fahrenheit => "F",
            Kelvin => "K",
            UsGallon => "gal",
            CubicMetre => "m3",
            WattHour => "Wh",
            MegawattHour => "MWh",
            Pound => "lb",
            Gram => "g",
        }
    }

    /// Parses a device's unit, accepting the usual spellings.
    pub fn parse(text: &str) -> Result<Unit, UnitError> {
        use Unit::*;
        Ok(match text.trim() {
            "ug/m3" | "µg/m3" | "μg/m3" | "ug/m³" | "µg/m³" | "μg/m³" => MicrogramPerM3,
            "mg/m3" | "mg/m³" => MilligramPerM3,
            "ppb" => Ppb,
            "ppm" => Ppm,
            "C" | "°C" | "degC" | "celsius" => Celsius,
            "%RH" | "%rh" | "%" => PercentRh,
            "L" | "l" | "litre" | "liter" => Litre,
            "mv" | "mV" => Millivolt,
            "ph" | "pH" => Ph,
            "kWh" | "kwh" => KilowattHour,
            "kg" => Kilogram,
            "F" | "°F" | "degF" | "fahrenheit" => Fahrenheit,
            "K" | "kelvin" => Kelvin,
            "gal" | "gallon" | "US gal" => UsGallon,
            "m3" | "m³" => CubicMetre,
            "Wh" | "wh" => WattHour,
            "MWh" | "mwh" => MegawattHour,
            "lb" | "lbs" => Pound,
            "g" => Gram,
            other => return Err(UnitError::Unknown(other.to_string())),
        })
    }

    /// Parses a unit as declared to RESET: only RESET's exact spellings count.
    pub fn parse_reset(text: &str) -> Option<Unit> {
        Module::ALL
            .iter()
            .flat_map(|m| m.parameters())
            .flat_map(|p| p.reset_units())
            .find(|u| u.name() == text)
            .copied()
    }
}

/// Converts `value` measured in `from` into `to` (the monitor's declared unit).
/// TVOC is never converted between mass concentration and ppb: that needs the
/// gas's molar mass, which a monitor does not tell.
pub fn convert(value: f64, from: Unit, to: Unit) -> Result<f64, UnitError> {
    use Unit::*;
    if from == to {
        return Ok(value);
    }
    let converted = match (from, to) {
        (MilligramPerM3, MicrogramPerM3) => value * 1000.0,
        (Fahrenheit, Celsius) => (value - 32.0) * 5.0 / 9.0,
        (Kelvin, Celsius) => value - 273.15,
        (UsGallon, Litre) => value * 3.785_411_784,
        (CubicMetre, Litre) => value * 1000.0,
        (WattHour, KilowattHour) => value / 1000.0,
        (MegawattHour, KilowattHour) => value * 1000.0,
        (Pound, Kilogram) => value * 0.453_592_37,
        (Gram, Kilogram) => value / 1000.0,
        _ => {
            return Err(UnitError::Incompatible {
                from: from.name(),
                to: to.name(),
            })
        }
    };
    Ok(converted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_round_trips_its_name_and_belongs_to_one_module() {
        for module in Module::ALL {
            for &p in module.parameters() {
                assert_eq!(Parameter::parse(p.name()), Some(p));
                let owners = Module::ALL
                    .iter()
                    .filter(|m| m.parameters().contains(&p))
                    .count();
                assert_eq!(owners, 1, "{p}");
            }
        }
        let all: usize = Module::ALL.iter().map(|m| m.parameters().len()).sum();
        assert_eq!(all, Parameter::COUNT);
    }

    #[test]
    fn conversions_into_reset_units() {
        let c = |v, f: &str, t: &str| {
            convert(v, Unit::parse(f).unwrap(), Unit::parse(t).unwrap()).unwrap()
        };
        assert!((c(212.0, "°F", "C") - 100.0).abs() < 1e-12);
        assert!((c(273.15, "K", "C")).abs() < 1e-12);
        assert!((c(1.0, "gal", "L") - 3.785411784).abs() < 1e-12);
        assert_eq!(c(2.5, "m3", "L"), 2500.0);
        assert_eq!(c(1500.0, "Wh", "kWh"), 1.5);
        assert_eq!(c(2.0, "MWh", "kWh"), 2000.0);
        assert!((c(10.0, "lb", "kg") - 4.5359237).abs() < 1e-12);
        assert_eq!(c(250.0, "g", "kg"), 0.25);
        assert_eq!(c(0.012, "mg/m3", "ug/m3"), 12.0);
    }

    #[test]
    fn tvoc_is_never_converted_between_ppb_and_mass() {
        let err = convert(1.0, Unit::MilligramPerM3, Unit::Ppb).unwrap_err();
        assert_eq!(err.to_string(), "mg/m3 cannot be converted to ppb");
        assert!(convert(1.0, Unit::Ppb, Unit::MilligramPerM3).is_err());
    }

    #[test]
    fn unknown_units_are_named() {
        assert_eq!(
            Unit::parse("furlongs").unwrap_err().to_string(),
            "unknown unit \"furlongs\""
        );
    }

    #[test]
    fn declared_units_must_be_reset_spellings() {
        assert_eq!(Unit::parse_reset("ug/m3"), Some(Unit::MicrogramPerM3));
        assert_eq!(Unit::parse_reset("µg/m3"), None);
        assert_eq!(Unit::parse_reset("F"), None);
    }
}
