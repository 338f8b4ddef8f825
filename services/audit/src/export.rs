//! The export file: a domain's history that verifies offline (JSON Lines).
//!
//! ```text
//! {"domain":"org-a","exported_at":"...","first_seq":1,"format":"accord-audit-export","last_seq":42,"stream":"ACCORD_EVENTS","trust_domain":"org-a.example","version":1}
//! {"seq":1,"subject":"accord.evt.org-a.domain.org-a.DomainCreated","stored_at":"...","message":{...}}
//! ...
//! ```
//!
//! `message` is the stored message verbatim (the leaf's exact bytes) and always the last member,
//! so that a reader can take the bytes between `,"message":` and the line's final `}` without
//! re-encoding anything. The header is informative: nothing in it is trusted by the verifier.

use std::io::{BufRead, Write};

use accord_events::Timestamp;
use accord_store::reader::LogEntry;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const FORMAT: &str = "accord-audit-export";
pub const VERSION: u32 = 1;
/// Longest line accepted: the largest event and its line's framing.
pub const MAX_LINE: usize = accord_events::signing::MAX_EVENT_BYTES + 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportHeader {
    pub format: String,
    pub version: u32,
    pub domain: String,
    pub trust_domain: String,
    pub stream: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub exported_at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: {detail}")]
    Line { line: u64, detail: String },
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
}

fn stored_at(nanos: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(|t| Timestamp::from_datetime(t).to_string())
        .unwrap_or_default()
}

/// Writes the header line.
pub fn write_header(out: &mut dyn Write, h: &ExportHeader) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, h)?;
    out.write_all(b"\n")
}

/// Writes one entry's line.
pub fn write_entry(out: &mut dyn Write, e: &LogEntry) -> std::io::Result<()> {
    // seq, subject and time are plain JSON; the message is copied byte for byte
    let subject = serde_json::to_string(&e.subject)?;
    write!(
        out,
        "{{\"seq\":{},\"subject\":{subject},\"stored_at\":\"{}\",\"message\":",
        e.seq,
        stored_at(e.stored_at_nanos)
    )?;
    out.write_all(&e.payload)?;
    out.write_all(b"}\n")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    seq: u64,
    subject: String,
    stored_at: String,
    #[serde(borrow)]
    message: &'a RawValue,
}

/// Reads an export: the header, then entries in file order (the verifier checks the order).
#[derive(Debug)]
pub struct ExportReader<R> {
    input: R,
    line: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> ExportReader<R> {
    /// Reads and checks the header line.
    pub fn open(mut input: R) -> Result<(ExportHeader, Self), ExportError> {
        let mut r = ExportReader {
            input: &mut input,
            line: 0,
            buf: Vec::new(),
        };
        let header: ExportHeader = match r.next_line()? {
            Some(b) => serde_json::from_slice(b).map_err(|e| ExportError::Line {
                line: 1,
                detail: format!("not an export header: {e}"),
            })?,
            None => {
                return Err(ExportError::Line {
                    line: 1,
                    detail: "empty file".into(),
                });
            }
        };
        if header.format != FORMAT || header.version != VERSION {
            return Err(ExportError::Line {
                line: 1,
                detail: format!(
                    "format {:?} version {} is not {FORMAT} version {VERSION}",
                    header.format, header.version
                ),
            });
        }
        Ok((
            header,
            ExportReader {
                input,
                line: 1,
                buf: Vec::new(),
            },
        ))
    }

    fn next_line(&mut self) -> Result<Option<&[u8]>, ExportError> {
        self.buf.clear();
        let n = std::io::Read::take(&mut self.input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE {
            return Err(ExportError::Line {
                line: self.line,
                detail: format!("longer than {MAX_LINE} bytes"),
            });
        }
        Ok(Some(&self.buf))
    }

    /// The next entry, or `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>, ExportError> {
        let line = self.line + 1;
        let Some(bytes) = self.next_line()? else {
            return Ok(None);
        };
        let l: Line = serde_json::from_slice(bytes).map_err(|e| ExportError::Line {
            line,
            detail: e.to_string(),
        })?;
        let nanos = Timestamp::parse(&l.stored_at)
            .map(|t| t.datetime().unix_timestamp_nanos())
            .map_err(|e| ExportError::Line {
                line,
                detail: format!("stored_at: {e}"),
            })?;
        Ok(Some(LogEntry {
            seq: l.seq,
            subject: l.subject,
            payload: bytes::Bytes::copy_from_slice(l.message.get().as_bytes()),
            stored_at_nanos: nanos,
            pending: 0,
        }))
    }
}
