//! PowerShell string literals for values we put into a script, and reading them back.
//!
//! Pure. Every value that is not our own fixed text goes through [`quote`], which yields an
//! expression whose value is exactly the input and whose text is printable ASCII without `<`,
//! `&` or `]]>`. Such a script is read the same by PowerShell whatever code page it assumes for
//! a file without a byte-order mark, and it can stand between `<powershell>` tags unchanged:
//! the tag's consumers cut the script out as raw text (they do not decode XML entities), while an
//! XML parser reads the same text (there is nothing to decode).

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;

/// The expression that decodes UTF-8 text from base64, before its base64 argument.
const DECODE_PREFIX: &str = "([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('";
/// What closes [`DECODE_PREFIX`] after the base64 argument.
const DECODE_SUFFIX: &str = "')))";

/// True when `s` can be a single-quoted literal as it is: printable ASCII, newlines and tabs,
/// none of the XML-significant `<`, `&` or `]]>`. Carriage returns are not literal-safe: a
/// transport that rewrites line endings would change the value.
pub fn is_literal_safe(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, ' '..='~' | '\n' | '\t') && c != '<' && c != '&')
        && !s.contains("]]>")
}

/// A PowerShell expression whose value is `s`: a single-quoted literal (no `$` expansion, no
/// backtick escapes; the only special character, `'`, is doubled) when [`is_literal_safe`],
/// else the decoding of its UTF-8 bytes from base64.
pub fn quote(s: &str) -> String {
    if is_literal_safe(s) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        format!(
            "{DECODE_PREFIX}{}{DECODE_SUFFIX}",
            BASE64_STANDARD.encode(s)
        )
    }
}

/// Reads one expression made by [`quote`] at the start of `text`: its value and the text after
/// it. `None` when `text` does not start with one.
pub fn unquote(text: &str) -> Option<(String, &str)> {
    if let Some(rest) = text.strip_prefix(DECODE_PREFIX) {
        let (b64, rest) = rest.split_once(DECODE_SUFFIX)?;
        let bytes = BASE64_STANDARD.decode(b64).ok()?;
        return Some((String::from_utf8(bytes).ok()?, rest));
    }
    let mut chars = text.strip_prefix('\'')?.char_indices().peekable();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                chars.next();
            } else {
                // `i` is relative to the text after the opening quote.
                return Some((value, &text[i + 2..]));
            }
        }
        value.push(c);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn plain_text_is_a_single_quoted_literal() {
        assert_eq!(quote("C:\\k0s\\k0s.exe"), "'C:\\k0s\\k0s.exe'");
        assert_eq!(quote("it's"), "'it''s'");
        // Nothing else is special between single quotes: no expansion, no escapes.
        assert_eq!(quote("$(whoami) `n $env:X"), "'$(whoami) `n $env:X'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn xml_significant_and_non_ascii_text_is_base64() {
        for s in [
            "a < b",
            "a & b",
            "x]]>y",
            "caf\u{e9}",
            "\u{2019}smart\u{2019}",
            "a\r\nb",
        ] {
            let q = quote(s);
            assert!(q.starts_with(DECODE_PREFIX), "{q}");
            assert!(is_literal_safe(&q), "{q}");
            assert_eq!(unquote(&q).unwrap(), (s.to_string(), ""));
        }
        // `]` and `>` alone are fine.
        assert_eq!(quote("a]>b ]] >"), "'a]>b ]] >'");
    }

    #[test]
    fn unquote_reads_back_and_returns_the_rest() {
        for s in ["", "'", "''", "it's", "a'\nb", "\"@\n'@", "x&y"] {
            let text = format!("{} -Next 'x'", quote(s));
            let (value, rest) = unquote(&text).unwrap();
            assert_eq!(value, s);
            assert_eq!(rest, " -Next 'x'");
        }
        assert_eq!(unquote("'unterminated"), None);
        assert_eq!(unquote("bare"), None);
    }
}
