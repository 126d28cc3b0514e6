//! A plain Server-Sent Events client for the end-to-end tests: a blocking
//! HTTP response read line by line, as any SSE client reads it.

use super::Ferry;
use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::time::Duration;

/// One message: its `id`, `event` and `data` (JSON) fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// An open stream. Every read is bounded by the whole request's timeout,
/// so a stream that stalls fails the test instead of hanging it.
pub struct Stream {
    lines: Lines<BufReader<Response>>,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
    /// Every raw line read, for checks of the text itself.
    pub raw: String,
}

/// Open `path` with `token`, resuming after `last_event_id` if given.
/// Panics unless the answer is `200 text/event-stream`.
pub fn open(f: &Ferry, path: &str, token: &str, last_event_id: Option<u64>) -> Stream {
    let r = request(f, path, token, last_event_id);
    assert_eq!(r.status(), 200, "GET {path}");
    let ct = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/event-stream"), "{path}: {ct}");
    Stream {
        lines: BufReader::new(r).lines(),
        comments: 0,
        raw: String::new(),
    }
}

/// The raw answer to a stream request (to check refusals).
pub fn request(f: &Ferry, path: &str, token: &str, last_event_id: Option<u64>) -> Response {
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut r = client.get(f.url(path)).bearer_auth(token);
    if let Some(id) = last_event_id {
        r = r.header("Last-Event-ID", id.to_string());
    }
    r.send().unwrap()
}

impl Stream {
    /// The next message, or `None` when the server ended the stream (or
    /// the connection broke).
    pub fn next(&mut self) -> Option<Message> {
        let (mut id, mut event, mut data) = (None, None, None::<String>);
        loop {
            let line = match self.lines.next() {
                Some(Ok(line)) => line,
                _ => return None,
            };
            self.raw.push_str(&line);
            self.raw.push('\n');
            if line.is_empty() {
                match data.take() {
                    Some(d) => {
                        return Some(Message {
                            id: id.take(),
                            event: event.take(),
                            data: serde_json::from_str(&d)
                                .unwrap_or_else(|e| panic!("data is not JSON ({e}): {d}")),
                        })
                    }
                    // A block without data (`retry:`, a comment) is no message.
                    None => continue,
                }
            }
            if line.starts_with(':') {
                self.comments += 1;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "id" => id = Some(value),
                "event" => event = Some(value),
                "data" => {
                    data = Some(match data {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                _ => {}
            }
        }
    }

    /// Every message until the server ends the stream.
    pub fn until_end(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.next()).collect()
    }
}
