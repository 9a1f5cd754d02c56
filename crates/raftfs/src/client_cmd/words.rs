//! Shell words: splitting a shell line into words with quotes and escapes, and showing content
//! in the same quoted form, so that what the shell prints can be typed back.
//!
//! Syntax: words are separated by spaces or tabs. `"..."` quotes a word that holds spaces and
//! takes the escapes `\\`, `\"`, `\n`, `\r`, `\t`, `\0` and `\xHH` (any byte); `'...'` quotes
//! literally. Quoted and unquoted parts next to each other make one word (`a"b c"` is `ab c`),
//! and `""` is an empty word.

/// Why a line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    /// A quote was opened and never closed.
    #[error("unterminated {0} quote")]
    Unterminated(&'static str),
    /// A backslash inside double quotes was followed by something that is not an escape.
    #[error("unknown escape \\{0} (use \\\\ \\\" \\n \\r \\t \\0 or \\xHH)")]
    BadEscape(String),
}

/// Splits `line` into words (see the module's documentation for the syntax).
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, WordsError> {
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut rest = line.iter().copied();
    while let Some(byte) = rest.next() {
        match byte {
            b' ' | b'\t' => words.extend(word.take()),
            b'\'' => {
                let word = word.get_or_insert_with(Vec::new);
                loop {
                    match rest.next() {
                        Some(b'\'') => break,
                        Some(b) => word.push(b),
                        None => return Err(WordsError::Unterminated("single")),
                    }
                }
            }
            b'"' => {
                let word = word.get_or_insert_with(Vec::new);
                loop {
                    match rest.next() {
                        Some(b'"') => break,
                        Some(b'\\') => word.push(escape(&mut rest)?),
                        Some(b) => word.push(b),
                        None => return Err(WordsError::Unterminated("double")),
                    }
                }
            }
            b => word.get_or_insert_with(Vec::new).push(b),
        }
    }
    words.extend(word);
    Ok(words)
}

/// The byte an escape inside double quotes stands for; `rest` is just past the backslash.
fn escape(rest: &mut impl Iterator<Item = u8>) -> Result<u8, WordsError> {
    match rest.next() {
        Some(b'\\') => Ok(b'\\'),
        Some(b'"') => Ok(b'"'),
        Some(b'n') => Ok(b'\n'),
        Some(b'r') => Ok(b'\r'),
        Some(b't') => Ok(b'\t'),
        Some(b'0') => Ok(0),
        Some(b'x') => {
            let hex: Vec<u8> = rest.take(2).collect();
            std::str::from_utf8(&hex)
                .ok()
                .filter(|digits| digits.len() == 2)
                .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                .ok_or_else(|| WordsError::BadEscape(format!("x{}", String::from_utf8_lossy(&hex))))
        }
        Some(other) => Err(WordsError::BadEscape(
            String::from_utf8_lossy(&[other]).into_owned(),
        )),
        None => Err(WordsError::Unterminated("double")),
    }
}

/// Whether `content` reads well as it is on a terminal: UTF-8 text whose only control
/// characters are newlines and tabs. Anything else (a `\r` that would move the cursor, an
/// escape sequence, NUL, invalid UTF-8) is shown [`quoted`].
pub fn is_plain_text(content: &[u8]) -> bool {
    !content.is_empty()
        && std::str::from_utf8(content).is_ok_and(|text| {
            !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        })
}

/// `content` as a double-quoted word that [`split`] turns back into the same bytes; printable
/// ASCII stays as it is, every other byte is escaped.
pub fn quoted(content: &[u8]) -> String {
    let mut out = String::with_capacity(content.len() + 2);
    out.push('"');
    for &byte in content {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0 => out.push_str("\\0"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn words(line: &str) -> Vec<String> {
        split(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn splits_on_runs_of_blanks() {
        assert_eq!(words("  write  foo\tbar "), ["write", "foo", "bar"]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn quotes_keep_spaces_and_join_adjacent_parts() {
        assert_eq!(
            words(r#"write foo "hello world" 10"#),
            ["write", "foo", "hello world", "10"]
        );
        assert_eq!(
            words("write foo 'a \"b\" \\n'"),
            ["write", "foo", "a \"b\" \\n"]
        );
        assert_eq!(words(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(words(r#"write foo """#), ["write", "foo", ""]);
    }

    #[test]
    fn escapes_in_double_quotes() {
        let got = split(br#""\\ \" \n \r \t \0 \x00 \xff \x7F""#).unwrap();
        assert_eq!(got, [b"\\ \" \n \r \t \0 \0 \xff \x7f".to_vec()]);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert_eq!(
            split(b"write 'foo"),
            Err(WordsError::Unterminated("single"))
        );
        assert_eq!(
            split(b"write \"foo"),
            Err(WordsError::Unterminated("double"))
        );
        assert_eq!(
            split(b"write \"foo\\"),
            Err(WordsError::Unterminated("double"))
        );
        assert!(matches!(split(br#""\q""#), Err(WordsError::BadEscape(_))));
        assert!(matches!(split(br#""\x4""#), Err(WordsError::BadEscape(_))));
        assert!(matches!(split(br#""\xzz""#), Err(WordsError::BadEscape(_))));
    }

    #[test]
    fn quoted_content_splits_back_to_the_same_bytes() {
        let every_byte: Vec<u8> = (0..=255).collect();
        for content in [&every_byte[..], b"", b"plain", b"a \"quoted\" \\ word\r\n"] {
            let word = quoted(content);
            assert!(word.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{word}");
            assert_eq!(split(word.as_bytes()).unwrap(), [content.to_vec()]);
        }
    }

    #[test]
    fn plain_text_is_utf8_without_control_characters() {
        assert!(is_plain_text("héllo\n\tworld\n".as_bytes()));
        assert!(!is_plain_text(b""));
        assert!(!is_plain_text(b"a\r\n"));
        assert!(!is_plain_text(b"a\0b"));
        assert!(!is_plain_text(b"\x1b[2J"));
        assert!(!is_plain_text(b"\xff"));
    }
}
