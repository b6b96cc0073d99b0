//! [`StreamedJson`]: a JSON response written to the client as it is encoded, in blocks, so
//! that a large answer (a run of 100,000 steps is 80 MB of JSON) is never held whole, nor
//! copied each time a growing buffer doubles.

use std::convert::Infallible;
use std::io::Write;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use tokio::sync::mpsc;

/// How much of the encoding is handed to the connection at once.
const BLOCK: usize = 64 * 1024;
/// Blocks encoded ahead of what the connection took: the encoder waits beyond that.
const BLOCKS_AHEAD: usize = 4;

/// A value answered as JSON, encoded on a blocking thread while the blocks already encoded
/// are sent.
pub(crate) struct StreamedJson<T>(pub(crate) T);

impl<T: Serialize + Send + 'static> IntoResponse for StreamedJson<T> {
    fn into_response(self) -> Response {
        let (sender, receiver) = mpsc::channel::<Bytes>(BLOCKS_AHEAD);
        let value = self.0;
        tokio::task::spawn_blocking(move || {
            let mut writer = Blocks {
                block: Vec::with_capacity(BLOCK),
                sender,
            };
            // Fails only when the client went away: there is no one left to tell.
            if serde_json::to_writer(&mut writer, &value).is_ok() {
                let _ = writer.flush();
            }
        });
        // Fused: a body may be polled again once it ended (a compressing layer does).
        let blocks = futures::stream::unfold(receiver, |mut receiver| async move {
            let block = receiver.recv().await?;
            Some((Ok::<_, Infallible>(block), receiver))
        })
        .fuse();
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(blocks),
        )
            .into_response()
    }
}

/// Gathers the encoding into blocks and sends each one full.
struct Blocks {
    block: Vec<u8>,
    sender: mpsc::Sender<Bytes>,
}

impl Blocks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        self.sender
            .blocking_send(Bytes::from(block))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for Blocks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.block.extend_from_slice(bytes);
        if self.block.len() >= BLOCK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_large_value_arrives_whole_in_blocks() {
        let value: Vec<String> = (0..50_000).map(|i| format!("item {i}")).collect();
        let response = StreamedJson(value.clone()).into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert!(
            body.len() > BLOCK * 2,
            "more than one block: {}",
            body.len()
        );
        let back: Vec<String> = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, value);
    }

    /// `count` numbers, counting how many were encoded.
    struct Counted {
        count: u64,
        encoded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl Serialize for Counted {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut sequence = serializer.serialize_seq(Some(self.count as usize))?;
            for number in 0..self.count {
                self.encoded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                sequence.serialize_element(&number)?;
            }
            sequence.end()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_leaves_stops_the_encoding() {
        use futures::StreamExt;
        let encoded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = 100_000_000;
        let response = StreamedJson(Counted {
            count,
            encoded: encoded.clone(),
        })
        .into_response();
        let mut body = response.into_body().into_data_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(first.len() >= BLOCK, "{}", first.len());
        drop(body);
        let load = || encoded.load(std::sync::atomic::Ordering::Relaxed);
        // The encoder stops at its next full block: a few blocks past the first.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let stopped_at = load();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(load(), stopped_at, "still encoding after the client left");
        assert!(stopped_at < count / 100, "encoded {stopped_at} of {count}");
    }
}
