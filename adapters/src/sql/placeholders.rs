//! Where the `?` placeholders of a statement are, read as PostgreSQL reads SQL text.
//!
//! Read models write SQL once, with `?` placeholders; PostgreSQL wants `$1, $2, …` (or, in a
//! deferred batch, a reference into the statement's bound values). A `?` inside a string
//! literal, a quoted identifier, a dollar-quoted string or a comment is text, not a
//! placeholder, so the statement is first [`mask`]ed: every byte that is not SQL code is
//! blanked out, and only what is left is searched (for placeholders here, for the shape of
//! an `INSERT … VALUES (…)` in [`super::postgres`]). Values never pass through this module:
//! they are bound, not written into the text.

use std::borrow::Cow;

/// What a byte of masked text stands for when it was not code.
const MASKED_LITERAL: u8 = b'_';
const MASKED_COMMENT: u8 = b' ';

/// `sql` with every byte inside a literal, a quoted identifier, a dollar-quoted string or a
/// comment replaced (literal and identifier bytes, quotes included, by `_`; comments by
/// spaces), so that a search of the result finds only SQL code. Byte offsets are kept.
///
/// The rules are PostgreSQL's, which SQLite's are a subset of for the SQL we write:
/// `'…'` with `''` inside, `E'…'` where a backslash also escapes, `"…"` with `""` inside,
/// `$tag$…$tag$` (a `$` that follows an identifier character, as in `$1` or `a$b`, opens
/// nothing), `-- …` to the end of the line, and `/* … */`, which nests. Text left open at the
/// end is masked to the end.
pub fn mask(sql: &str) -> Vec<u8> {
    let bytes = sql.as_bytes();
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at < bytes.len() {
        let end = match bytes[at] {
            b'\'' => {
                let escapes = at > 0
                    && bytes[at - 1].eq_ignore_ascii_case(&b'e')
                    && !(at > 1 && is_identifier_byte(bytes[at - 2]));
                Some(quoted_end(bytes, at, b'\'', escapes))
            }
            b'"' => Some(quoted_end(bytes, at, b'"', false)),
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                let end = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |offset| at + offset);
                out[at..end].fill(MASKED_COMMENT);
                at = end;
                continue;
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                let end = block_comment_end(bytes, at);
                out[at..end].fill(MASKED_COMMENT);
                at = end;
                continue;
            }
            b'$' if at == 0 || !is_identifier_byte(bytes[at - 1]) => dollar_quoted_end(bytes, at),
            _ => None,
        };
        match end {
            Some(end) => {
                out[at..end].fill(MASKED_LITERAL);
                at = end;
            }
            None => at += 1,
        }
    }
    out
}

/// Byte offsets of the `?` placeholders of `sql`, in order.
pub fn placeholders(sql: &str) -> Vec<usize> {
    mask(sql)
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'?')
        .map(|(at, _)| at)
        .collect()
}

/// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL; a `?` that is not code ([`mask`])
/// is left alone.
pub fn to_postgres_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    replace_placeholders(&mut out, sql, &placeholders(sql), |out, index| {
        out.push('$');
        out.push_str(&(index + 1).to_string());
    });
    Cow::Owned(out)
}

/// Appends `sql` to `out` with the placeholder at each of `at` (byte offsets of `?`, from
/// [`placeholders`]) replaced by what `placeholder` writes for it, given its index from 0.
pub fn replace_placeholders(
    out: &mut String,
    sql: &str,
    at: &[usize],
    mut placeholder: impl FnMut(&mut String, usize),
) {
    let mut copied = 0;
    for (index, &offset) in at.iter().enumerate() {
        out.push_str(&sql[copied..offset]);
        placeholder(out, index);
        copied = offset + 1;
    }
    out.push_str(&sql[copied..]);
}

/// Letters, digits, `_`, `$` and any byte of a non-ASCII character: what PostgreSQL lets an
/// identifier (or a `$n` parameter) go on with.
fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The end (one past the closing quote) of the quoted text opening at `start`; a doubled
/// quote stays inside, and so does a backslash-escaped character when `escapes`.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if escapes => at += 2,
            b if b == quote => {
                if bytes.get(at + 1) == Some(&quote) {
                    at += 2;
                } else {
                    return at + 1;
                }
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The end of the (nested) block comment opening at `start`.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut at = start;
    while at + 1 < bytes.len() {
        match (bytes[at], bytes[at + 1]) {
            (b'/', b'*') => {
                depth += 1;
                at += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    return at;
                }
            }
            _ => at += 1,
        }
    }
    bytes.len()
}

/// The end of the dollar-quoted string opening at `start` (`$$` or `$tag$`, a tag being an
/// identifier that does not start with a digit), or `None` when no dollar quote opens there.
fn dollar_quoted_end(bytes: &[u8], start: usize) -> Option<usize> {
    let tag_length = bytes[start + 1..]
        .iter()
        .position(|&b| !(is_identifier_byte(b) && b != b'$'))?;
    let tag_end = start + 1 + tag_length;
    if bytes.get(tag_end) != Some(&b'$') || bytes.get(start + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let delimiter = &bytes[start..=tag_end];
    let body = tag_end + 1;
    Some(
        bytes[body..]
            .windows(delimiter.len())
            .position(|window| window == delimiter)
            .map_or(bytes.len(), |offset| body + offset + delimiter.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_marks_become_numbered_placeholders_outside_literals() {
        assert_eq!(
            to_postgres_placeholders("SELECT ? , '?' , ? WHERE a = '?x' AND b = ?"),
            "SELECT $1 , '?' , $2 WHERE a = '?x' AND b = $3"
        );
        assert!(matches!(
            to_postgres_placeholders("SELECT 1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_question_mark_in_any_kind_of_quote_or_comment_is_not_a_placeholder() {
        let cases = [
            ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
            ("SELECT E'\\'?', ?", "SELECT E'\\'?', $1"),
            ("SELECT e'\\\\', ?", "SELECT e'\\\\', $1"),
            // Not an escape string: `e` ends the identifier `some`.
            ("SELECT some'?', ?", "SELECT some'?', $1"),
            (
                "SELECT \"a?\"\"b?\" FROM t WHERE c = ?",
                "SELECT \"a?\"\"b?\" FROM t WHERE c = $1",
            ),
            ("SELECT $$?$$, ?", "SELECT $$?$$, $1"),
            ("SELECT $x$ $$ ? $x$, ?", "SELECT $x$ $$ ? $x$, $1"),
            ("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"),
            ("SELECT /* a /* ? */ ? */ ?", "SELECT /* a /* ? */ ? */ $1"),
            // `$1` is a parameter and `a$b` an identifier: neither opens a dollar quote.
            (
                "SELECT $1, a$b$ FROM t WHERE x = ? AND y = '$'",
                "SELECT $1, a$b$ FROM t WHERE x = $1 AND y = '$'",
            ),
            ("SELECT 'open ?", "SELECT 'open ?"),
        ];
        for (sql, expected) in cases {
            assert_eq!(to_postgres_placeholders(sql), expected, "{sql}");
        }
    }

    #[test]
    fn masking_keeps_every_byte_offset() {
        let sql = "SELECT 'فاتورة ?', ? -- ✓\n";
        let masked = mask(sql);
        assert_eq!(masked.len(), sql.len());
        assert_eq!(placeholders(sql), [sql.rfind('?').unwrap()]);
        assert!(masked.is_ascii());
    }
}
