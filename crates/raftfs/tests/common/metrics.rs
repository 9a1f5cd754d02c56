//! `GET /metrics` of a member, parsed with a Prometheus text-format parser (`prometheus-parse`).

use prometheus_parse::{Scrape, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GETs `/metrics` from an HTTP address and parses it.
pub async fn scrape(http: &str) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: raftfs\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"));
    assert!(
        body.trim_end().ends_with("# EOF"),
        "the exposition is complete"
    );
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of sample `metric` whose labels include `labels` (0 if absent, as a counter not
/// yet created would be).
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => panic!("{metric} is a histogram or summary sample"),
        })
        .collect();
    assert!(found.len() <= 1, "{metric}{labels:?} names one sample");
    found.first().copied().unwrap_or(0.0)
}

/// Whether the exposition has any sample of `metric`.
pub fn present(scrape: &Scrape, metric: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == metric)
}
