//! A snapshot's body: the rows of a read model's tables, length-prefixed and typed, with no
//! framing beyond what decoding needs. Column names travel with each table so that a body is
//! loaded by name, and one written before a column was added fails to load (and is skipped)
//! instead of filling the wrong columns.
//!
//! Layout (integers as LEB128 varints, signed ones zigzag-encoded first):
//! `MAGIC`, table count, then per table: name, column count, column names, row count, and each
//! row's values. A value is a tag byte (`NULL`, `INT`, `TEXT`, `BLOB`) and its payload; text and
//! blobs are a length and bytes. A real number has no tag: no read model stores one.

use adapters::sqlite_conn::Column;

/// The first bytes of every body: the format and its version.
const MAGIC: &[u8; 4] = b"RLS1";

const NULL: u8 = 0;
const INT: u8 = 1;
const TEXT: u8 = 2;
const BLOB: u8 = 3;

/// Why a body could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the body does not start with the snapshot format's marker")]
    NotASnapshot,
    #[error("the body ends in the middle of a value")]
    Truncated,
    #[error("the body holds an unknown value tag {0}")]
    UnknownTag(u8),
    #[error("the body holds text that is not UTF-8")]
    NotUtf8,
    #[error("the body has {0} bytes after its last table")]
    Trailing(usize),
    #[error("column {column} of {table} holds a real number, which snapshots do not carry")]
    Real { table: String, column: usize },
}

/// One table's rows as decoded.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Column>>,
}

/// Writes a body table by table.
pub struct Encoder {
    bytes: Vec<u8>,
}

impl Encoder {
    /// A body that will hold `tables` tables.
    pub fn new(tables: usize) -> Encoder {
        let mut bytes = Vec::with_capacity(64 * 1024);
        bytes.extend_from_slice(MAGIC);
        put_unsigned(&mut bytes, tables as u64);
        Encoder { bytes }
    }

    /// Starts a table of `rows` rows with these columns; its rows follow with [`Self::value`].
    pub fn table(&mut self, name: &str, columns: &[String], rows: u64) {
        put_bytes(&mut self.bytes, name.as_bytes());
        put_unsigned(&mut self.bytes, columns.len() as u64);
        for column in columns {
            put_bytes(&mut self.bytes, column.as_bytes());
        }
        put_unsigned(&mut self.bytes, rows);
    }

    /// The next value of the current row (`column` names it in an error).
    pub fn value(&mut self, table: &str, column: usize, value: &Column) -> Result<(), CodecError> {
        match value {
            Column::Null => self.bytes.push(NULL),
            Column::Int(v) => {
                self.bytes.push(INT);
                put_unsigned(&mut self.bytes, zigzag(*v));
            }
            Column::Text(v) => {
                self.bytes.push(TEXT);
                put_bytes(&mut self.bytes, v.as_bytes());
            }
            Column::Blob(v) => {
                self.bytes.push(BLOB);
                put_bytes(&mut self.bytes, v);
            }
            Column::Real(_) => {
                return Err(CodecError::Real {
                    table: table.to_owned(),
                    column,
                })
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Every table of a body, or why it is not one.
pub fn decode(bytes: &[u8]) -> Result<Vec<Table>, CodecError> {
    let mut reader = Reader { bytes, at: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(CodecError::NotASnapshot);
    }
    let count = reader.count()?;
    let mut tables = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let name = reader.text()?;
        let width = reader.count()?;
        let mut columns = Vec::with_capacity(width.min(256));
        for _ in 0..width {
            columns.push(reader.text()?);
        }
        let height = reader.count()?;
        // Each value takes a byte at least: a count beyond the bytes left is a damaged body,
        // not a reason to reserve memory.
        let mut rows = Vec::with_capacity(height.min(reader.left()));
        for _ in 0..height {
            let mut row = Vec::with_capacity(width);
            for _ in 0..width {
                row.push(reader.value()?);
            }
            rows.push(row);
        }
        tables.push(Table {
            name,
            columns,
            rows,
        });
    }
    match reader.left() {
        0 => Ok(tables),
        trailing => Err(CodecError::Trailing(trailing)),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], CodecError> {
        let end = self.at.checked_add(count).ok_or(CodecError::Truncated)?;
        let taken = self.bytes.get(self.at..end).ok_or(CodecError::Truncated)?;
        self.at = end;
        Ok(taken)
    }

    fn unsigned(&mut self) -> Result<u64, CodecError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::Truncated)
    }

    /// A count or length, which can never exceed the bytes of the body.
    fn count(&mut self) -> Result<usize, CodecError> {
        usize::try_from(self.unsigned()?).map_err(|_| CodecError::Truncated)
    }

    fn raw(&mut self) -> Result<&'a [u8], CodecError> {
        let length = self.count()?;
        self.take(length)
    }

    fn text(&mut self) -> Result<String, CodecError> {
        let raw = self.raw()?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| CodecError::NotUtf8)
    }

    fn value(&mut self) -> Result<Column, CodecError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            NULL => Column::Null,
            INT => Column::Int(unzigzag(self.unsigned()?)),
            TEXT => Column::Text(self.text()?),
            BLOB => Column::Blob(self.raw()?.to_vec()),
            other => return Err(CodecError::UnknownTag(other)),
        })
    }
}

fn put_unsigned(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn put_bytes(bytes: &mut Vec<u8>, raw: &[u8]) {
    put_unsigned(bytes, raw.len() as u64);
    bytes.extend_from_slice(raw);
}

/// Small magnitudes of either sign in few bytes (-1 is 1, 1 is 2).
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn column() -> impl Strategy<Value = Column> {
        prop_oneof![
            Just(Column::Null),
            any::<i64>().prop_map(Column::Int),
            ".{0,40}".prop_map(Column::Text),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Column::Blob),
        ]
    }

    fn encode(tables: &[Table]) -> Vec<u8> {
        let mut encoder = Encoder::new(tables.len());
        for table in tables {
            encoder.table(&table.name, &table.columns, table.rows.len() as u64);
            for row in &table.rows {
                for (index, value) in row.iter().enumerate() {
                    encoder.value(&table.name, index, value).unwrap();
                }
            }
        }
        encoder.finish()
    }

    proptest! {
        #[test]
        fn a_body_decodes_to_the_tables_it_was_encoded_from(
            rows in proptest::collection::vec(proptest::collection::vec(column(), 3), 0..20),
        ) {
            let tables = vec![
                Table { name: "a".into(), columns: vec!["x".into(), "y".into(), "z".into()], rows },
                Table { name: "empty".into(), columns: vec!["only".into()], rows: vec![] },
            ];
            prop_assert_eq!(decode(&encode(&tables)).unwrap(), tables);
        }

        #[test]
        fn a_cut_or_altered_body_is_refused_or_decodes_without_panicking(
            rows in proptest::collection::vec(proptest::collection::vec(column(), 2), 1..10),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let tables = vec![Table { name: "t".into(), columns: vec!["a".into(), "b".into()], rows }];
            let bytes = encode(&tables);
            let at = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..at]).is_err());
            let mut altered = bytes.clone();
            altered[flip.index(bytes.len())] ^= 0x5a;
            let _ = decode(&altered);
        }
    }

    #[test]
    fn a_real_number_is_refused_with_its_place() {
        let mut encoder = Encoder::new(1);
        encoder.table("t", &["a".into()], 1);
        assert_eq!(
            encoder.value("t", 0, &Column::Real(1.5)),
            Err(CodecError::Real {
                table: "t".into(),
                column: 0
            })
        );
    }
}
