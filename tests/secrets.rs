//! The client secret never appears in logs: an auth failure and a success,
//! logged at debug level in both formats, are searched for it.

mod common;
use reset_pipeline::config::Secret;
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::sink::{Publisher, PublisherSettings, Status};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const RIGHT: &str = "s3cret-right-7f2a";
const WRONG: &str = "s3cret-wrong-91bc";

async fn auth_failure_then_success() {
    let options = EmulatorOptions {
        client_secret: Secret::new(RIGHT),
        ..Default::default()
    };
    let handle = serve("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    for secret in [WRONG, RIGHT] {
        let mut s = PublisherSettings::new(
            &format!("http://{}", handle.addr),
            "demo",
            Secret::new(secret),
        );
        s.backoff_min = Duration::from_millis(10);
        let (publisher, _rx) = Publisher::start(s);
        tracing::debug!(settings = ?publisher.status(), "started");
        let expect = if secret == RIGHT {
            Status::Ready
        } else {
            Status::Unauthorized
        };
        let mut status = publisher.status_watch();
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| *s == expect))
            .await
            .unwrap()
            .unwrap();
        publisher.drain(Duration::from_millis(50)).await;
    }
    handle.stop();
}

async fn run_with_log(json: bool) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let builder = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false);
    let _guard = if json {
        tracing::subscriber::set_default(builder.json().finish())
    } else {
        tracing::subscriber::set_default(builder.finish())
    };
    auth_failure_then_success().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    log
}

#[tokio::test]
async fn no_log_line_holds_the_secret_in_either_format() {
    for json in [false, true] {
        let log = run_with_log(json).await;
        assert!(
            log.contains("RESET refuses the credentials"),
            "the failure is logged: {log}"
        );
        assert!(log.contains("authenticated at RESET"), "{log}");
        assert!(
            !log.contains(RIGHT) && !log.contains(WRONG),
            "secret in the log:\n{log}"
        );
        // The settings' Debug form masks it too.
        let s = PublisherSettings::new("http://x", "demo", Secret::new(RIGHT));
        assert!(!format!("{s:?}").contains(RIGHT));
    }
}
