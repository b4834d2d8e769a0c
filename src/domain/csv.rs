//! CSV as RFC 4180 writes it, made safe to open in a spreadsheet: exports
//! carry what people typed, and a cell starting with `=` would otherwise
//! run as a formula on the analyst's machine.

/// Spreadsheets read a CSV file as UTF-8 only when it starts with this.
pub const BYTE_ORDER_MARK: &str = "\u{feff}";

/// One cell of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// A value the server wrote (an id, a time, a name from a closed list).
    Value(&'a str),
    /// Text that came from outside (a message, a name, a contact): guarded
    /// against being read as a formula.
    Text(&'a str),
}

/// Appends one record, its cells separated by commas, ended by CRLF.
pub fn write_record<'a>(out: &mut String, cells: impl IntoIterator<Item = Cell<'a>>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Value(value) => write_cell(out, "", value),
            Cell::Text(text) if starts_formula(text) => write_cell(out, "'", text),
            Cell::Text(text) => write_cell(out, "", text),
        }
    }
    out.push_str("\r\n");
}

fn write_cell(out: &mut String, prefix: &str, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(prefix);
        for c in value.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(prefix);
        out.push_str(value);
    }
}

/// Whether a spreadsheet would read `text` as a formula (or, for tab and
/// carriage return, shift it into one). A phone number (`+` and digits
/// only) is left as it is: it can call nothing.
fn starts_formula(text: &str) -> bool {
    match text.as_bytes().first() {
        Some(b'+') => !text[1..].bytes().all(|b| b.is_ascii_digit()) || text.len() == 1,
        Some(b'=' | b'-' | b'@' | b'\t' | b'\r') => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[Cell<'_>]) -> String {
        let mut out = String::new();
        write_record(&mut out, cells.iter().copied());
        out
    }

    #[test]
    fn plain_cells_are_written_as_they_are() {
        assert_eq!(
            record(&[Cell::Value("a"), Cell::Text("Maria Silva"), Cell::Value("")]),
            "a,Maria Silva,\r\n"
        );
    }

    #[test]
    fn commas_quotes_and_line_breaks_are_quoted() {
        assert_eq!(record(&[Cell::Text("a,b")]), "\"a,b\"\r\n");
        assert_eq!(
            record(&[Cell::Text("she said \"hi\"")]),
            "\"she said \"\"hi\"\"\"\r\n"
        );
        assert_eq!(
            record(&[Cell::Text("line\nnext"), Cell::Text("cr\rlf")]),
            "\"line\nnext\",\"cr\rlf\"\r\n"
        );
    }

    #[test]
    fn text_that_starts_a_formula_is_defused() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "+1+2",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "+",
        ] {
            let written = record(&[Cell::Text(formula)]);
            assert!(
                written.starts_with('\'') || written.starts_with("\"'"),
                "{formula:?} → {written:?}"
            );
        }
        assert_eq!(record(&[Cell::Text("=1,2")]), "\"'=1,2\"\r\n");
    }

    #[test]
    fn phone_numbers_and_server_values_are_not_defused() {
        assert_eq!(record(&[Cell::Text("+351912345678")]), "+351912345678\r\n");
        assert_eq!(record(&[Cell::Value("-5")]), "-5\r\n");
        assert_eq!(record(&[Cell::Text("a=b")]), "a=b\r\n");
    }
}
