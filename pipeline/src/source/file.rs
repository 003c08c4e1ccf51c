//! File replay: NDJSON, a JSON array (as `/api/v1/logs` returns), event-hook envelopes
//! `{"data":{"events":[…]}}` and pretty-printed or concatenated JSON, each optionally
//! gzip-compressed (recognised by its magic bytes, not its name); `-` reads stdin.
//!
//! NDJSON is streamed line by line in bounded memory: an over-long line is cut off at the
//! configured size and rejected, not buffered whole. A document (a file whose first line
//! opens an array or an object without closing it) is read into memory and walked value by
//! value, so a broken element costs only itself and what follows it, never what came before.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;

use flate2::read::MultiGzDecoder;

use crate::reject::{RejectKind, Rejection};

/// Where a record sits in its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of an NDJSON input.
    Line(u64),
    /// 1-based top-level value (or array element) of a document input.
    Element(u64),
    /// The offset of a Kafka message in its partition.
    Offset(i64),
}

/// An input as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    Path(PathBuf),
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn parse(arg: &str) -> Self {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }

    /// The name used in dead letters and summaries.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_owned(),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// Errors that end the reading of one input. Records read before it are kept.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input could not be opened.
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    /// Reading failed part-way (e.g. a gzip stream cut short).
    #[error("reading {path} failed after {records} records: {source}")]
    Read {
        path: String,
        records: u64,
        source: io::Error,
    },
}

/// One raw record: its bytes, where it was, and whether it was cut off or rejected
/// before decoding.
#[derive(Debug)]
pub struct RawRecord<'a> {
    pub bytes: &'a [u8],
    pub position: Position,
    /// Set when the record is already known to be bad (over-long, truncated input).
    pub rejected: Option<Rejection>,
}

/// Receives records in batches.
pub trait RecordSink {
    /// Handles one batch of records; `Break` stops reading this input (the sink keeps the
    /// reason).
    fn records(&mut self, source: &str, batch: &[RawRecord<'_>]) -> ControlFlow<()>;
}

/// Limits for reading.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Longest record accepted; longer ones are rejected as `too_large`.
    pub max_event_bytes: usize,
    /// How many bytes of records to hand over at once.
    pub batch_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_event_bytes: 1 << 20,
            batch_bytes: 4 << 20,
        }
    }
}

/// Reads one input to the end, handing its records to `sink` in batches. Returns the number
/// of records read.
pub fn read_input(input: &Input, limits: ReadLimits, sink: &mut dyn RecordSink) -> Result<u64, SourceError> {
    let name = input.name();
    let raw: Box<dyn Read> = match input {
        Input::Stdin => Box::new(io::stdin().lock()),
        Input::Path(p) => Box::new(File::open(p).map_err(|source| SourceError::Open {
            path: name.clone(),
            source,
        })?),
    };
    let mut reader = BufReader::with_capacity(1 << 16, raw);
    let head = reader.fill_buf().map_err(|source| SourceError::Read {
        path: name.clone(),
        records: 0,
        source,
    })?;
    let mut reader: Box<dyn BufRead> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    let mut first = Vec::new();
    let mut records = 0u64;
    let mut first_state;
    let is_document = loop {
        first.clear();
        match read_line_checked(&mut reader, &mut first, limits.max_event_bytes) {
            Ok((0, _)) => return Ok(0),
            Ok((_, state)) => first_state = state,
            Err(source) => {
                // The input broke inside its first line: hand over what there is.
                if !first.is_empty() {
                    let rec = RawRecord {
                        bytes: &first,
                        position: Position::Line(1),
                        rejected: Some(Rejection::new(
                            RejectKind::TruncatedInput,
                            format!("input ended early: {source}"),
                        )),
                    };
                    let _ = sink.records(&name, std::slice::from_ref(&rec));
                    records = 1;
                }
                return Err(SourceError::Read {
                    path: name,
                    records,
                    source,
                });
            }
        }
        let trimmed = first.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        break trimmed.starts_with(b"[") || trimmed == b"{";
    };
    if is_document {
        read_document(&name, first, reader, limits, sink)
    } else {
        read_ndjson(&name, first, first_state, reader, limits, sink)
    }
}

/// Outcome of reading one line.
enum Line {
    Complete,
    /// Longer than the limit: `buf` holds the first `limit` bytes, the rest was skipped.
    TooLong(usize),
}

/// Reads up to and excluding `\n` into `buf`, keeping at most `limit` bytes of a longer
/// line; returns the bytes consumed (0 at end of input) and whether the line was cut.
fn read_line_checked(reader: &mut dyn BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<(usize, Line)> {
    let mut consumed = 0usize;
    let mut total_len = 0usize;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = (limit + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total_len += chunk.len();
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        consumed += used;
        if done.is_some() {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if total_len > limit {
        buf.truncate(limit);
        Ok((consumed, Line::TooLong(total_len)))
    } else {
        Ok((consumed, Line::Complete))
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// A growing batch of records stored back to back in one buffer.
struct Batch {
    buf: Vec<u8>,
    spans: Vec<(usize, usize, Position, Option<Rejection>)>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            buf: Vec::with_capacity(1 << 20),
            spans: Vec::with_capacity(4096),
        }
    }

    fn push(&mut self, bytes: &[u8], position: Position, rejected: Option<Rejection>) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        self.spans.push((start, self.buf.len(), position, rejected));
    }

    fn flush(&mut self, name: &str, sink: &mut dyn RecordSink) -> ControlFlow<()> {
        if self.spans.is_empty() {
            return ControlFlow::Continue(());
        }
        let records: Vec<RawRecord<'_>> = self
            .spans
            .iter_mut()
            .map(|(s, e, p, r)| RawRecord {
                bytes: &self.buf[*s..*e],
                position: *p,
                rejected: r.take(),
            })
            .collect();
        let flow = sink.records(name, &records);
        self.buf.clear();
        self.spans.clear();
        flow
    }
}

fn read_ndjson(
    name: &str,
    first: Vec<u8>,
    first_state: Line,
    mut reader: Box<dyn BufRead>,
    limits: ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<u64, SourceError> {
    let mut batch = Batch::new();
    let mut line_no = 0u64;
    let mut records = 0u64;
    let mut line = first;
    // The first line was read by the format sniffing (blank lines before it were skipped);
    // count the lines it consumed as one: positions stay exact for files without leading
    // blank lines, which is every file Okta or this product writes.
    let mut pending = Some(first_state);
    loop {
        if let Some(state) = pending.take() {
            line_no += 1;
            if !line.trim_ascii().is_empty() {
                records += 1;
                let rejected = match state {
                    Line::Complete => None,
                    Line::TooLong(len) => Some(Rejection::new(
                        RejectKind::TooLarge,
                        format!("{len} bytes exceeds the limit of {} bytes", limits.max_event_bytes),
                    )),
                };
                batch.push(&line, Position::Line(line_no), rejected);
                if batch.buf.len() >= limits.batch_bytes && batch.flush(name, sink).is_break() {
                    return Ok(records);
                }
            }
        }
        line.clear();
        match read_line_checked(&mut *reader, &mut line, limits.max_event_bytes) {
            Ok((0, _)) => break,
            Ok((_, state)) => pending = Some(state),
            Err(source) => {
                if !line.is_empty() {
                    records += 1;
                    let detail = format!("input ended early: {source}");
                    batch.push(
                        &line,
                        Position::Line(line_no + 1),
                        Some(Rejection::new(RejectKind::TruncatedInput, detail)),
                    );
                }
                let _ = batch.flush(name, sink);
                return Err(SourceError::Read {
                    path: name.to_owned(),
                    records,
                    source,
                });
            }
        }
    }
    let _ = batch.flush(name, sink);
    Ok(records)
}

fn read_document(
    name: &str,
    mut doc: Vec<u8>,
    mut reader: Box<dyn BufRead>,
    limits: ReadLimits,
    sink: &mut dyn RecordSink,
) -> Result<u64, SourceError> {
    doc.push(b'\n');
    let read_result = reader.read_to_end(&mut doc);
    let mut batch = Batch::new();
    let mut walker = DocumentWalker {
        doc: &doc,
        pos: 0,
        element: 0,
        records: 0,
    };
    if walker.walk(&mut batch, limits, name, sink).is_continue() {
        let _ = batch.flush(name, sink);
    }
    match read_result {
        Ok(_) => Ok(walker.records),
        Err(source) => Err(SourceError::Read {
            path: name.to_owned(),
            records: walker.records,
            source,
        }),
    }
}

/// Walks a document's top-level values; arrays are entered one level.
struct DocumentWalker<'d> {
    doc: &'d [u8],
    pos: usize,
    element: u64,
    records: u64,
}

impl DocumentWalker<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.doc.len() && self.doc[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    /// Parses one JSON value at `pos`; returns its span.
    fn value(&mut self) -> Result<(usize, usize), Rejection> {
        let start = self.pos;
        let mut stream = serde_json::Deserializer::from_slice(&self.doc[start..]).into_iter::<serde::de::IgnoredAny>();
        match stream.next() {
            Some(Ok(_)) => {
                self.pos = start + stream.byte_offset();
                Ok((start, self.pos))
            }
            Some(Err(e)) if e.is_eof() => Err(Rejection::new(
                RejectKind::TruncatedInput,
                format!("input ends inside a JSON value: {e}"),
            )),
            Some(Err(e)) => Err(Rejection::new(RejectKind::NotJson, e.to_string())),
            None => Err(Rejection::new(
                RejectKind::TruncatedInput,
                "input ends where a value was expected",
            )),
        }
    }

    fn emit(&mut self, batch: &mut Batch, span: (usize, usize), rejected: Option<Rejection>) {
        self.element += 1;
        self.records += 1;
        batch.push(&self.doc[span.0..span.1], Position::Element(self.element), rejected);
    }

    /// Hands over the unreadable rest of the document as one rejected record.
    fn bail(&mut self, batch: &mut Batch, limits: ReadLimits, rejection: Rejection) -> ControlFlow<()> {
        let end = self.doc.len().min(self.pos + limits.max_event_bytes);
        let span = (self.pos, end);
        let mut rejection = rejection;
        if self.doc.len() > end {
            rejection
                .detail
                .push_str(&format!(" ({} more bytes not read)", self.doc.len() - end));
        }
        self.emit(batch, span, Some(rejection));
        self.pos = self.doc.len();
        ControlFlow::Continue(())
    }

    fn walk(
        &mut self,
        batch: &mut Batch,
        limits: ReadLimits,
        name: &str,
        sink: &mut dyn RecordSink,
    ) -> ControlFlow<()> {
        loop {
            self.skip_ws();
            if self.pos >= self.doc.len() {
                return ControlFlow::Continue(());
            }
            if self.doc[self.pos] != b'[' {
                match self.value() {
                    Ok(span) => self.emit(batch, span, None),
                    Err(r) => return self.bail(batch, limits, r),
                }
                continue;
            }
            self.pos += 1;
            self.skip_ws();
            if self.doc.get(self.pos) == Some(&b']') {
                self.pos += 1;
                continue;
            }
            loop {
                self.skip_ws();
                match self.value() {
                    Ok(span) => self.emit(batch, span, None),
                    Err(r) => return self.bail(batch, limits, r),
                }
                if batch.buf.len() >= limits.batch_bytes {
                    batch.flush(name, sink)?;
                }
                self.skip_ws();
                match self.doc.get(self.pos) {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    Some(c) => {
                        let r = Rejection::new(
                            RejectKind::NotJson,
                            format!("expected `,` or `]` in array, found {:?}", *c as char),
                        );
                        return self.bail(batch, limits, r);
                    }
                    None => {
                        let r = Rejection::new(RejectKind::TruncatedInput, "array not closed: input ends early");
                        return self.bail(batch, limits, r);
                    }
                }
            }
        }
    }
}
