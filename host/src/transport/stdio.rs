//! MCP over stdio: one JSON message per line in, one per line out; the connection is one
//! session.
//!
//! Messages are received in order (so a `notifications/cancelled` finds the request it
//! names) and each is run on the blocking pool, so a long training never holds up a `ping`
//! or `tools/list` that arrives after it. Replies and notifications are written whole, one per
//! line; a request's notifications come before its reply. At end of input the server
//! finishes the requests in flight, then returns. Nothing but protocol messages is ever
//! written to the output.

use crate::protocol::{ErrorCode, Reply, RpcError, Server};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Largest message accepted (bytes in one line).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Messages waiting for a client that reads slowly.
const OUTPUT_BUFFER: usize = 1024;

/// Serves `server` on `input` and `output` until `input` ends.
pub async fn serve<R, W>(server: Server, input: R, mut output: W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let session = server.session();
    let (replies, mut outbox) = mpsc::channel::<String>(OUTPUT_BUFFER);
    let writer = {
        let session = session.clone();
        tokio::spawn(async move {
            while let Some(reply) = outbox.recv().await {
                let written = async {
                    output.write_all(reply.as_bytes()).await?;
                    output.write_all(b"\n").await?;
                    output.flush().await
                };
                if let Err(e) = written.await {
                    // Nobody reads the replies any more: stop the work that would produce them.
                    session.cancel_all();
                    return Err(e);
                }
            }
            Ok::<_, std::io::Error>(())
        })
    };
    let mut reader = BufReader::new(input);
    let mut in_flight = JoinSet::new();
    loop {
        match next_line(&mut reader, MAX_MESSAGE_BYTES).await? {
            Line::Eof => break,
            Line::TooLong => {
                let error = RpcError::new(
                    ErrorCode::InvalidRequest,
                    format!("the message exceeds the limit of {MAX_MESSAGE_BYTES} bytes"),
                );
                let _ = replies
                    .send(Reply::error(Value::Null, &error).into_text())
                    .await;
            }
            Line::Message(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                if text.trim().is_empty() {
                    continue;
                }
                let received = session.receive_text(&text);
                if !received.expects_reply() {
                    continue;
                }
                if !received.calls_tools() {
                    if let Some(reply) = received.run(&|_| {}) {
                        let _ = replies.send(reply.into_text()).await;
                    }
                    continue;
                }
                let replies = replies.clone();
                in_flight.spawn_blocking(move || {
                    // A client that reads slower than a training notifies loses
                    // notifications, never replies.
                    let notify = |message: Value| {
                        if let Ok(text) = serde_json::to_string(&message) {
                            let _ = replies.try_send(text);
                        }
                    };
                    if let Some(reply) = received.run(&notify) {
                        let _ = replies.blocking_send(reply.into_text());
                    }
                });
            }
        }
        // Reap finished handlers so the set does not grow without bound.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    drop(replies);
    writer.await.map_err(std::io::Error::other)?
}

/// One line of input.
enum Line {
    /// A complete line, without its newline.
    Message(Vec<u8>),
    /// A line longer than the limit (discarded).
    TooLong,
    /// End of input.
    Eof,
}

/// Reads up to the next newline, keeping at most `max` bytes.
async fn next_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Eof,
                (false, false) => Line::Message(line),
            });
        }
        let newline = buf.iter().position(|b| *b == b'\n');
        let take = newline.unwrap_or(buf.len());
        if !too_long {
            let chunk = buf.get(..take).unwrap_or_default();
            if line.len() + chunk.len() > max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = newline.map_or(take, |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Message(line)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let input: &[u8] = b"{\"a\":1}\n\nxxxxxxxxxxxx\nlast";
        let mut reader = BufReader::new(input);
        let mut seen = Vec::new();
        loop {
            match next_line(&mut reader, 10).await.unwrap_or(Line::Eof) {
                Line::Eof => break,
                Line::TooLong => seen.push("too long".to_string()),
                Line::Message(m) => seen.push(String::from_utf8_lossy(&m).into_owned()),
            }
        }
        assert_eq!(seen, ["{\"a\":1}", "", "too long", "last"]);
    }
}
