//! The command line: parsing and dispatch to the library. Every failure is a
//! one-line error naming the file and field, and a non-zero exit.

use crate::config::{Config, PushMode};
use crate::offline;
use crate::problem::Problems;
use crate::registry::Registry;
use crate::window::EngineSettings;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "reset-pipeline",
    version,
    about = "Sensor events from Kafka to RESET Cloud half-hour readings"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Offline: raw events (JSON lines) in, the exact RESET emissions out. No Kafka, no network.
    Aggregate {
        /// The monitor registry (monitors.yaml).
        #[arg(long)]
        monitors: PathBuf,
        /// Raw events, one JSON object a line ("-" for standard input).
        #[arg(long)]
        input: PathBuf,
        /// Where to write emissions, one JSON line each (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where to write rejected samples as JSON lines (default: counted on stderr only).
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// A config file whose `windowing` and `reset.push` settings apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a config (and the monitor registry it names), or just a registry.
    Validate {
        #[arg(
            long,
            required_unless_present = "monitors",
            conflicts_with = "monitors"
        )]
        config: Option<PathBuf>,
        #[arg(long)]
        monitors: Option<PathBuf>,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Aggregate {
            monitors,
            input,
            output,
            rejects,
            config,
        } => aggregate(
            &monitors,
            &input,
            output.as_deref(),
            rejects.as_deref(),
            config.as_deref(),
        ),
        Command::Validate { config, monitors } => validate(config.as_deref(), monitors.as_deref()),
    }
}

fn problems(p: Problems) -> anyhow::Error {
    anyhow::anyhow!("{p}")
}

fn aggregate(
    monitors: &Path,
    input: &Path,
    output: Option<&Path>,
    rejects: Option<&Path>,
    config: Option<&Path>,
) -> Result<()> {
    let (settings, push) = match config {
        Some(path) => {
            let c = Config::load(path).map_err(problems)?;
            (EngineSettings::from(&c.windowing), c.reset.push)
        }
        None => (EngineSettings::default(), PushMode::default()),
    };
    let registry = Arc::new(Registry::load(monitors).map_err(problems)?);
    let mut reader: Box<dyn io::BufRead> = if input == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(input).with_context(|| format!("{}: cannot open", input.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(BufWriter::new(
            File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        None => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let mut rejects_file = match rejects {
        Some(p) => {
            Some(BufWriter::new(File::create(p).with_context(|| {
                format!("{}: cannot create", p.display())
            })?))
        }
        None => None,
    };
    let summary = offline::aggregate(
        registry,
        settings,
        push,
        &mut reader,
        &mut out,
        rejects_file.as_mut().map(|w| w as &mut dyn Write),
    )
    .with_context(|| format!("{}: aggregate failed", input.display()))?;
    if let Some(w) = rejects_file.as_mut() {
        w.flush().context("cannot write rejects")?;
    }
    eprintln!("aggregate: {summary}");
    Ok(())
}

fn validate(config: Option<&Path>, monitors: Option<&Path>) -> Result<()> {
    let mut found = Problems::default();
    let mut monitor_count = None;
    let mut check_registry = |path: &Path, found: &mut Problems| match Registry::load(path) {
        Ok(r) => monitor_count = Some(r.len()),
        Err(p) => found.extend(p),
    };
    if let Some(path) = config {
        match Config::load(path) {
            Ok(c) => {
                let c = c.with_env_credentials(|k| std::env::var(k).ok());
                found.extend(c.validate(&path.display().to_string()));
                if let Some(file) = c.monitors_file() {
                    check_registry(&file, &mut found);
                }
            }
            Err(p) => found.extend(p),
        }
    }
    if let Some(path) = monitors {
        check_registry(path, &mut found);
    }
    if found.is_empty() {
        match monitor_count {
            Some(n) => println!("ok: {n} monitors"),
            None => println!("ok"),
        }
        Ok(())
    } else {
        for p in found.iter() {
            println!("{p}");
        }
        anyhow::bail!("{} problem(s) found", found.len())
    }
}
