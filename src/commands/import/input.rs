//! Reading an input file one record at a time, whatever its size: CSV through the csv
//! crate's streaming reader, Parquet as record batches through the parquet crate's Arrow
//! reader. Nothing here holds more than one record (CSV) or one record batch (Parquet).
//!
//! A record's cells are read where they lie: CSV fields as `&str` in one reused record,
//! Parquet columns as Arrow arrays (text columns cast to strings, the numeric columns the
//! importer asks for as `f64`, so numbers are not printed and parsed back).

use anyhow::{Context, bail};
use arrow_array::cast::AsArray;
use arrow_array::{Array, Float64Array, StringArray};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Rows per Parquet record batch.
const PARQUET_BATCH_ROWS: usize = 8_192;

/// How the importer uses a column, which decides how it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Use {
    /// Read as text (Parquet: cast to strings; timestamps as epoch milliseconds).
    Text,
    /// Read as a number where the file stores numbers (Parquet numeric columns), else text.
    Number,
    /// Not read at all (Parquet: not even decoded).
    Ignored,
}

/// One cell: text, or a number from a numeric Parquet column. A null reads as empty text.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cell<'a> {
    Text(&'a str),
    Number(f64),
}

/// The cells of one readable record.
pub(super) enum Cells<'a> {
    Csv(&'a csv::StringRecord),
    Arrow { columns: &'a [Option<Column>], row: usize },
}

impl<'a> Cells<'a> {
    /// Fields in the record (CSV rows can be short or long; Parquet rows never are).
    pub(super) fn len(&self) -> usize {
        match self {
            Cells::Csv(r) => r.len(),
            Cells::Arrow { columns, .. } => columns.len(),
        }
    }

    /// The cell of column `i` (empty text past the end of a short row).
    pub(super) fn get(&self, i: usize) -> Cell<'a> {
        match *self {
            Cells::Csv(r) => Cell::Text(r.get(i).unwrap_or("")),
            Cells::Arrow { columns, row } => match columns.get(i).and_then(Option::as_ref) {
                Some(Column::Text(a)) if !a.is_null(row) => Cell::Text(a.value(row)),
                Some(Column::Number(a)) if !a.is_null(row) => Cell::Number(a.value(row)),
                _ => Cell::Text(""),
            },
        }
    }
}

/// One input record: where it is (for [`Source::line`]), and its cells or why it could not
/// be split into cells.
pub(super) struct Record<'a> {
    pub(super) at: At,
    pub(super) cells: Result<Cells<'a>, String>,
}

/// Where a record is: a byte offset (CSV) or a row number (Parquet).
#[derive(Clone, Copy, Debug)]
pub(super) struct At(u64);

/// A decoded Parquet column.
pub(super) enum Column {
    Text(StringArray),
    Number(Float64Array),
}

/// An open input file, positioned at its first record.
pub(super) struct Source {
    path: PathBuf,
    header: Vec<String>,
    kind: Kind,
}

enum Kind {
    Csv { reader: csv::Reader<BufReader<File>>, record: csv::StringRecord, lines: Option<LineCounter> },
    Parquet(ParquetInput),
}

struct ParquetInput {
    builder: Option<ParquetRecordBatchReaderBuilder<File>>,
    reader: Option<ParquetRecordBatchReader>,
    uses: Vec<Use>,
    columns: Vec<Option<Column>>,
    rows: usize,
    next: usize,
    row: u64,
}

impl Source {
    /// Opens `path` by its extension (`.csv`, `.parquet` or `.pq`) and reads its header.
    pub(super) fn open(path: &Path) -> anyhow::Result<Source> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let file = || File::open(path).with_context(|| format!("reading {}", path.display()));
        let (header, kind) = match ext.as_str() {
            "csv" => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .from_reader(BufReader::with_capacity(1 << 16, file()?));
                let header: Vec<String> = reader
                    .headers()
                    .with_context(|| format!("{}: reading the header", path.display()))?
                    .iter()
                    .map(str::to_owned)
                    .collect();
                (header, Kind::Csv { reader, record: csv::StringRecord::new(), lines: None })
            }
            "parquet" | "pq" => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(file()?)
                    .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
                let header = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
                let input = ParquetInput {
                    builder: Some(builder),
                    reader: None,
                    uses: Vec::new(),
                    columns: Vec::new(),
                    rows: 0,
                    next: 0,
                    row: 0,
                };
                (header, Kind::Parquet(input))
            }
            _ => bail!("{}: unknown input format (expected .csv or .parquet)", path.display()),
        };
        Ok(Source { path: path.to_path_buf(), header, kind })
    }

    /// The column names.
    pub(super) fn header(&self) -> &[String] {
        &self.header
    }

    /// Says how each column (in header order) is used, and skips the first `skip` records.
    pub(super) fn start(&mut self, uses: &[Use], skip: u64) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Csv { reader, .. } => {
                let mut record = csv::ByteRecord::new();
                for _ in 0..skip {
                    match reader.read_byte_record(&mut record) {
                        Ok(true) => {}
                        Ok(false) => bail!("{}: fewer than {skip} records", self.path.display()),
                        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                            return Err(e).with_context(|| format!("reading {}", self.path.display()));
                        }
                        Err(_) => {}
                    }
                }
            }
            Kind::Parquet(p) => {
                let Some(builder) = p.builder.take() else { bail!("a source starts once") };
                let roots: Vec<usize> =
                    uses.iter().enumerate().filter(|(_, u)| **u != Use::Ignored).map(|(i, _)| i).collect();
                let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
                p.reader = Some(
                    builder
                        .with_projection(mask)
                        .with_batch_size(PARQUET_BATCH_ROWS)
                        .with_offset(usize::try_from(skip).unwrap_or(usize::MAX))
                        .build()
                        .with_context(|| format!("{}: reading the row groups", self.path.display()))?,
                );
                p.uses = uses.to_vec();
                p.row = skip;
            }
        }
        Ok(())
    }

    /// The next record, or `None` at the end of the file. An I/O error, or a Parquet
    /// batch that cannot be decoded, is an error; a CSV record that cannot be split into
    /// cells (invalid UTF-8) is a record with an error.
    pub(super) fn next(&mut self) -> anyhow::Result<Option<Record<'_>>> {
        match &mut self.kind {
            Kind::Csv { reader, record, .. } => match reader.read_record(record) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    let at = At(record.position().map_or(0, csv::Position::byte));
                    Ok(Some(Record { at, cells: Ok(Cells::Csv(record)) }))
                }
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                    Err(e).with_context(|| format!("reading {}", self.path.display()))
                }
                Err(e) => {
                    let at = At(e.position().map_or(0, csv::Position::byte));
                    Ok(Some(Record { at, cells: Err(e.to_string()) }))
                }
            },
            Kind::Parquet(p) => {
                // A loop: a record batch can hold no rows.
                while p.next == p.rows {
                    let Some(reader) = p.reader.as_mut() else {
                        bail!("a source is started before it is read")
                    };
                    let Some(batch) = reader.next() else { return Ok(None) };
                    let batch =
                        batch.with_context(|| format!("{}: reading a row group", self.path.display()))?;
                    p.columns.clear();
                    // The batch holds the projected columns, in file order.
                    let mut projected = batch.columns().iter();
                    for u in &p.uses {
                        p.columns.push(match u {
                            Use::Ignored => None,
                            u => {
                                Some(column(projected.next().context("a projected column is missing")?, *u)?)
                            }
                        });
                    }
                    p.rows = batch.num_rows();
                    p.next = 0;
                }
                let row = p.next;
                p.next += 1;
                p.row += 1;
                Ok(Some(Record { at: At(p.row), cells: Ok(Cells::Arrow { columns: &p.columns, row }) }))
            }
        }
    }

    /// The line (CSV) or row (Parquet) number of a record, counted from 1 with the header
    /// as line 1 of a CSV file. Records must be asked for in file order: lines are counted
    /// on a second reading of the file, only as far as the records asked for (in practice
    /// rejected ones), so valid records cost nothing.
    pub(super) fn line(&mut self, at: At) -> anyhow::Result<u64> {
        match &mut self.kind {
            Kind::Csv { lines, .. } => {
                if lines.is_none() {
                    *lines = Some(LineCounter::new(&self.path)?);
                }
                let lines = lines.as_mut().context("a line counter")?;
                lines.line_of(at.0).with_context(|| format!("reading {}", self.path.display()))
            }
            Kind::Parquet(_) => Ok(at.0),
        }
    }
}

/// One Parquet column as the importer reads it: numbers as `f64` where it asked for
/// numbers and the column holds them; timestamps as epoch milliseconds, whatever their
/// unit or zone; everything else through Arrow's own cast to strings.
fn column(c: &arrow_array::ArrayRef, u: Use) -> anyhow::Result<Column> {
    let dt = c.data_type();
    if u == Use::Number && (dt.is_numeric() && !matches!(dt, DataType::Timestamp(..))) {
        let f = arrow_cast::cast(c, &DataType::Float64)?;
        return Ok(Column::Number(f.as_primitive::<arrow_array::types::Float64Type>().clone()));
    }
    let text = if let DataType::Timestamp(..) = dt {
        let ms = arrow_cast::cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        arrow_cast::cast(&arrow_cast::cast(&ms, &DataType::Int64)?, &DataType::Utf8)?
    } else {
        arrow_cast::cast(c, &DataType::Utf8)?
    };
    Ok(Column::Text(text.as_string::<i32>().clone()))
}

/// Numbers lines by reading the file a second time, forward only: the line of a byte
/// offset is one more than the newlines before it (the csv crate's own count is off by one
/// on CRLF).
struct LineCounter {
    file: BufReader<File>,
    offset: u64,
    newlines: u64,
}

impl LineCounter {
    fn new(path: &Path) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(LineCounter { file: BufReader::with_capacity(1 << 16, file), offset: 0, newlines: 0 })
    }

    /// The line number of the byte at `offset` (not before the last offset asked for).
    fn line_of(&mut self, offset: u64) -> std::io::Result<u64> {
        while self.offset < offset {
            let buf = self.file.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(usize::try_from(offset - self.offset).unwrap_or(usize::MAX));
            self.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset += n as u64;
            self.file.consume(n);
        }
        Ok(1 + self.newlines)
    }
}

/// The SHA-256 of a file's bytes, as hex: what names an input across runs.
pub(super) fn content_hash(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::LineCounter;

    #[test]
    fn lines_are_counted_by_newlines_before_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        std::fs::write(&path, b"a,b\r\n1,2\r\n\r\n3,4\n").unwrap();
        let mut c = LineCounter::new(&path).unwrap();
        assert_eq!(c.line_of(0).unwrap(), 1);
        assert_eq!(c.line_of(5).unwrap(), 2);
        assert_eq!(c.line_of(12).unwrap(), 4);
        assert_eq!(c.line_of(99).unwrap(), 5);
    }
}
