//! TLS to RESET with a private CA: the emulator serves TLS with a
//! certificate signed by a CA made here; a publisher configured with that
//! CA in `reset.ca_file` authenticates and is answered; one without it
//! never authenticates, stays not ready, logs each failed attempt naming the
//! certificate problem, and never falls back to plain text.

mod common;
use common::sample_emissions;
use reset_pipeline::config::{Config, Secret};
use reset_pipeline::emulator::{serve, EmulatorOptions, TlsFiles};
use reset_pipeline::payload::EventName;
use reset_pipeline::sink::{Fate, Outgoing, Publisher, Status};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A CA and a certificate for localhost and 127.0.0.1 that it signed: the
/// CA's PEM, and the server's certificate and key.
fn private_ca() -> (String, TlsFiles) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own: a server certificate with its issuer's name would
    // pass for self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "reset-pipeline test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server = server_params.signed_by(&server_key, &issuer).unwrap();
    let files = TlsFiles {
        cert_pem: server.pem().into_bytes(),
        key_pem: server_key.serialize_pem().into_bytes(),
    };
    (ca_cert.pem(), files)
}

/// A config for RESET at `url`, with `ca_file` if given, as `run` reads it.
fn config(url: &str, ca_file: Option<&Path>) -> Config {
    let mut c = Config::default();
    c.reset.url = url.to_string();
    c.reset.client_id = "demo".into();
    c.reset.client_secret = Secret::new("demo");
    c.reset.ack_timeout = Duration::from_secs(2);
    c.reset.ca_file = ca_file.map(Path::to_path_buf);
    c
}

fn first_monitor_message() -> Outgoing {
    let (event, payload) = sample_emissions()
        .into_iter()
        .find(|(e, _)| e == "monitors")
        .unwrap();
    assert_eq!(event, "monitors");
    let v: Value = serde_json::from_str(&payload).unwrap();
    Outgoing {
        event: EventName::Monitors,
        message_id: v["message_id"].as_str().unwrap().to_string(),
        key: v["data"]["connection_id"].as_str().unwrap().to_string(),
        payload,
        readings: 0,
    }
}

/// What the code under test logs, kept for the test to read.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted_and_without_it_nothing_is_sent() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The runtime of a plain #[tokio::test] runs every task on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (ca_pem, files) = private_ca();
    let options = EmulatorOptions {
        tls: Some(files),
        ..Default::default()
    };
    let emulator = serve("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let url = format!("https://localhost:{}", emulator.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();

    // Without the CA: the system's roots do not know it.
    let mut settings = reset_pipeline::live::publisher_settings(&config(&url, None)).unwrap();
    settings.backoff_min = Duration::from_millis(50);
    settings.backoff_max = Duration::from_millis(400);
    let (untrusting, _deliveries) = Publisher::start(settings);
    untrusting.offer_all([first_monitor_message()]);
    let attempts = || log.text().matches("cannot reach RESET").count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while attempts() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = log.text();
    assert!(attempts() >= 3, "no retries logged:\n{text}");
    for line in text.lines().filter(|l| l.contains("cannot reach RESET")) {
        assert!(
            line.contains("certificate"),
            "the line does not name the certificate problem: {line}"
        );
    }
    assert_ne!(*untrusting.status_watch().borrow(), Status::Ready);
    {
        let state = emulator.state.lock().unwrap();
        assert_eq!(
            state.stats.auth_ok + state.stats.auth_failed,
            0,
            "auth sent: {:?}",
            state.stats
        );
        assert_eq!(state.stats.messages, 0);
    }
    untrusting.drain(Duration::from_millis(100)).await;

    // With the CA in `reset.ca_file`: authenticated, and the message answered.
    let settings = reset_pipeline::live::publisher_settings(&config(&url, Some(&ca_file))).unwrap();
    let (trusting, mut deliveries) = Publisher::start(settings);
    let message = first_monitor_message();
    trusting.offer_all([message.clone()]);
    let delivery = match tokio::time::timeout(Duration::from_secs(30), deliveries.recv()).await {
        Ok(Some(d)) => d,
        other => panic!("no answer over TLS ({other:?}):\n{}", log.text()),
    };
    assert_eq!(delivery.message_id, message.message_id);
    assert_eq!(delivery.fate, Fate::Acknowledged, "{delivery:?}");
    assert_eq!(emulator.state.lock().unwrap().stats.auth_ok, 1);
    trusting.drain(Duration::from_secs(1)).await;
}

#[test]
fn validate_names_a_ca_file_that_cannot_be_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    for (file, expected) in [
        ("missing.pem", "cannot read"),
        ("empty.pem", "no PEM certificate"),
    ] {
        let mut c = config("https://reset.example", Some(Path::new(file)));
        c.base_dir = dir.path().to_path_buf();
        let problems: Vec<String> = c.validate("c.yaml").iter().map(|p| p.to_string()).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("c.yaml: reset.ca_file: ") && p.contains(expected)),
            "{file}: {problems:?}"
        );
    }
}
