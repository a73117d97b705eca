//! RESET's vocabulary as its API document (v2.1) states it: the modules,
//! each one's parameters, the units `included_parameters` may name, and
//! which parameters a monitor or a reading must carry. Transcribed here,
//! apart from the client's own tables (`crate::parameter`), so that a
//! mistake in either is caught by the other.

/// One parameter of a module, as the document lists it.
#[derive(Debug, PartialEq, Eq)]
pub struct ParameterRule {
    pub name: &'static str,
    /// The units `included_parameters.<name>.unit` may name.
    pub units: &'static [&'static str],
    /// Required in a `monitors` message's `included_parameters`.
    pub required_in_monitor: bool,
    /// Required in each reading.
    pub required_in_reading: bool,
}

/// One module, as the document lists it.
#[derive(Debug, PartialEq, Eq)]
pub struct ModuleRule {
    pub name: &'static str,
    /// Water, energy and circularity readings are per channel.
    pub channels: bool,
    pub parameters: &'static [ParameterRule],
}

impl ModuleRule {
    pub fn parameter(&self, name: &str) -> Option<&'static ParameterRule> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

const fn p(
    name: &'static str,
    units: &'static [&'static str],
    required_in_monitor: bool,
    required_in_reading: bool,
) -> ParameterRule {
    ParameterRule {
        name,
        units,
        required_in_monitor,
        required_in_reading,
    }
}

/// "Monitors - Create" (included_parameters per module) and "Readings"
/// (the fields of each reading).
pub static MODULES: &[ModuleRule] = &[
    ModuleRule {
        name: "air",
        channels: false,
        parameters: &[
            p("pm2p5", &["ug/m3"], false, true),
            p("tvoc", &["mg/m3", "ppb"], false, true),
            p("co2", &["ppm"], false, true),
            p("temp", &["C"], false, true),
            p("rh", &["%RH"], false, true),
            // "Optional and not used in RESET processing."
            p("pm10", &["ug/m3"], false, false),
        ],
    },
    ModuleRule {
        name: "water",
        channels: true,
        parameters: &[
            p("water_flow", &["L"], false, true),
            p("water_temp", &["C"], false, true),
            p("tds", &["ppm"], false, false),
            p("orp", &["mv"], false, false),
            p("ph", &["ph"], false, false),
        ],
    },
    ModuleRule {
        name: "energy",
        channels: true,
        parameters: &[p("power_consumption", &["kWh"], true, true)],
    },
    ModuleRule {
        name: "circularity",
        channels: true,
        parameters: &[p("bin_weight", &["kg"], false, true)],
    },
];

/// The module named so (case as the document writes it, lower case).
pub fn module(name: &str) -> Option<&'static ModuleRule> {
    MODULES.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parameter::Module;
    use std::collections::BTreeSet;

    /// The client's tables say what the document says, module by module:
    /// the same parameters, units, required readings and channels.
    #[test]
    fn the_clients_vocabulary_agrees_with_the_document() {
        let names: BTreeSet<&str> = MODULES.iter().map(|m| m.name).collect();
        let client: BTreeSet<&str> = Module::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, client);
        for rule in MODULES {
            let module = Module::parse(rule.name).unwrap();
            assert_eq!(module.has_channels(), rule.channels, "{}", rule.name);
            let documented: BTreeSet<&str> = rule.parameters.iter().map(|p| p.name).collect();
            let ours: BTreeSet<&str> = module.parameters().iter().map(|p| p.name()).collect();
            assert_eq!(ours, documented, "{}", rule.name);
            for &parameter in module.parameters() {
                let documented = rule.parameter(parameter.name()).unwrap();
                let units: BTreeSet<&str> =
                    parameter.reset_units().iter().map(|u| u.name()).collect();
                assert_eq!(
                    units,
                    documented.units.iter().copied().collect(),
                    "{}",
                    parameter.name()
                );
                assert_eq!(
                    module.requires(parameter),
                    documented.required_in_reading,
                    "{}",
                    parameter.name()
                );
            }
        }
    }
}
