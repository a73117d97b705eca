//! A bare librdkafka consumer, the yardstick of `scripts/json_live_vs_pathway.sh`:
//! reads RECORDS records of TOPIC in a group of its own, with the same
//! `fetch.wait.max.ms` (FETCH_WAIT_MS) as the programs compared, does
//! nothing with them, and prints the seconds from its start to the last.
//! No program reading the same broker the same way can be faster.
//! Usage: bare_consumer BOOTSTRAP GROUP TOPIC RECORDS FETCH_WAIT_MS

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, topic, records, fetch_wait] = &args[..] else {
        return Err("usage: bare_consumer BOOTSTRAP GROUP TOPIC RECORDS FETCH_WAIT_MS".into());
    };
    let records: usize = records.parse()?;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", fetch_wait)
        // As the pipeline's reader (`kafka::client::input_consumer_config`).
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    consumer.subscribe(&[topic.as_str()])?;
    let mut read = 0;
    while read < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => read += 1,
            Some(Err(e)) => eprintln!("bare_consumer: {e}"),
            None => {}
        }
    }
    println!("{:.2}", start.elapsed().as_secs_f64());
    Ok(())
}
