//! POSIX shell quoting and word splitting for the values we place into `runcmd` commands.
//!
//! Owns how untrusted strings (paths, versions, URLs, Machine names, user `args`) become shell
//! words. It must never interpret or expand anything: splitting follows the shell's quoting rules
//! but treats `$`, backticks, `;`, `|` and globs as literal characters.

/// Errors from splitting a user-provided argument into shell words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    /// A quote was opened but never closed.
    #[error("unterminated {quote} quote in {input:?}")]
    UnterminatedQuote {
        /// Which quote character was left open.
        quote: char,
        /// The offending input.
        input: String,
    },
    /// The input ended with a lone backslash.
    #[error("trailing backslash in {input:?}")]
    TrailingBackslash {
        /// The offending input.
        input: String,
    },
    /// The input contains a control character (NUL, newline, ...) that has no place in a flag.
    #[error("control character in {input:?}")]
    ControlCharacter {
        /// The offending input.
        input: String,
    },
}

/// Characters that never need quoting in a POSIX shell word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
}

/// Characters that keep a special meaning inside double quotes (plus `!`, which interactive
/// bash would expand; cheap to avoid).
fn special_in_double_quotes(c: char) -> bool {
    matches!(c, '"' | '$' | '`' | '\\' | '!')
}

/// Quotes `word` so that a POSIX shell reads it back as exactly one word with exactly this
/// content. Words made only of plain characters are returned unchanged.
pub fn quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(is_plain) {
        return word.to_string();
    }
    always_quote(word)
}

/// Like [`quote`] but always emits quotes, preferring double quotes when they are safe; upstream
/// writes `--kubelet-extra-args="..."`, and this keeps that spelling for ordinary values.
pub fn always_quote(word: &str) -> String {
    if !word.chars().any(special_in_double_quotes) {
        return format!("\"{word}\"");
    }
    // Single quotes: everything is literal; a single quote itself is closed, escaped, reopened.
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Splits one user-provided argument string into words the way a POSIX shell would, *without*
/// any expansion: whitespace separates words, single quotes are literal, double quotes allow
/// `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes the next character.
/// `$(...)`, `;`, `|` and the like stay literal text inside a word.
pub fn split_words(input: &str) -> Result<Vec<String>, ShellError> {
    if input.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ShellError::ControlCharacter {
            input: input.to_string(),
        });
    }
    let mut words = Vec::new();
    let mut current = String::new();
    // A word exists once any character or a pair of quotes was seen, so `''` yields "".
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' | '"' => {
                in_word = true;
                let closed = if c == '\'' {
                    read_single_quoted(&mut chars, &mut current)
                } else {
                    read_double_quoted(&mut chars, &mut current)
                };
                if !closed {
                    return Err(ShellError::UnterminatedQuote {
                        quote: c,
                        input: input.to_string(),
                    });
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(escaped) => current.push(escaped),
                    None => {
                        return Err(ShellError::TrailingBackslash {
                            input: input.to_string(),
                        });
                    }
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Reads a single-quoted string up to its closing quote: everything between is literal. False
/// when the input ends first.
fn read_single_quoted(chars: &mut std::str::Chars<'_>, word: &mut String) -> bool {
    for c in chars.by_ref() {
        if c == '\'' {
            return true;
        }
        word.push(c);
    }
    false
}

/// Reads a double-quoted string up to its closing quote: `\"`, `\\`, `\$` and `` \` `` are
/// escapes, any other backslash is literal. False when the input ends first.
fn read_double_quoted(chars: &mut std::str::Chars<'_>, word: &mut String) -> bool {
    while let Some(c) = chars.next() {
        match c {
            '"' => return true,
            '\\' => match chars.next() {
                Some(escaped @ ('"' | '\\' | '$' | '`')) => word.push(escaped),
                Some(other) => {
                    word.push('\\');
                    word.push(other);
                }
                None => return false,
            },
            inner => word.push(inner),
        }
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use std::process::Command;

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(quote("/usr/local/bin"), "/usr/local/bin");
        assert_eq!(quote("v1.34.1+k0s.0"), "v1.34.1+k0s.0");
        assert_eq!(
            quote("--labels=k0smotron.io/machine-name=m-1"),
            "--labels=k0smotron.io/machine-name=m-1"
        );
    }

    #[test]
    fn special_words_are_quoted() {
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("it's $HOME"), r"'it'\''s $HOME'");
    }

    #[test]
    fn split_follows_shell_quoting_without_expansion() {
        assert_eq!(
            split_words("--a=1 --b  2").ok(),
            Some(vec!["--a=1".into(), "--b".into(), "2".into()])
        );
        assert_eq!(
            split_words(r#"--kubelet-extra-args="--x=1 --y=2""#).ok(),
            Some(vec!["--kubelet-extra-args=--x=1 --y=2".into()])
        );
        assert_eq!(
            split_words("'a b' c\\ d").ok(),
            Some(vec!["a b".into(), "c d".into()])
        );
        assert_eq!(
            split_words("x;$(reboot)").ok(),
            Some(vec!["x;$(reboot)".into()])
        );
        assert_eq!(split_words("''").ok(), Some(vec![String::new()]));
        assert_eq!(split_words("  ").ok(), Some(vec![]));
        assert_eq!(
            split_words(r#""a\"b\$c\n""#).ok(),
            Some(vec![r#"a"b$c\n"#.into()])
        );
    }

    #[test]
    fn split_rejects_broken_input() {
        assert!(matches!(
            split_words("'abc"),
            Err(ShellError::UnterminatedQuote { quote: '\'', .. })
        ));
        assert!(matches!(
            split_words("\"abc"),
            Err(ShellError::UnterminatedQuote { quote: '"', .. })
        ));
        assert!(matches!(
            split_words("abc\\"),
            Err(ShellError::TrailingBackslash { .. })
        ));
        assert!(matches!(
            split_words("a\nb"),
            Err(ShellError::ControlCharacter { .. })
        ));
    }

    /// The real shell must read every quoted word back unchanged: `printf '%s\0'` prints the
    /// words it received, so a quoting bug shows up as a difference.
    #[test]
    fn quoted_words_round_trip_through_sh() {
        let words = [
            "plain",
            "",
            "a b",
            "it's",
            "\"dq\"",
            "$(touch /tmp/pwned) `id` ${HOME}",
            "back\\slash",
            "semi;colon|pipe&amp>redir<",
            "glob * ? [a]",
            "tab\there",
            "new\nline",
            "!bang",
            "ünïcødé",
        ];
        let script = format!(
            "printf '%s\\0' {}",
            words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("run sh");
        assert!(out.status.success(), "sh failed: {out:?}");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .map(str::to_string)
            .collect();
        let mut expected: Vec<String> = words.iter().map(|w| (*w).to_string()).collect();
        expected.push(String::new()); // after the final NUL
        assert_eq!(got, expected);
    }

    /// Splitting then quoting must give the shell the same words the user's string would.
    #[test]
    fn split_agrees_with_sh_for_expansion_free_input() {
        let inputs = [
            r#"--kubelet-extra-args="--node-ip=10.0.0.1 --max-pods=200""#,
            "--labels=a=b,c=d --taints 'x=y:NoSchedule'",
            r#"--x="a\"b" 'c d' e\ f"#,
        ];
        for input in inputs {
            let words = split_words(input).expect("split");
            let script = format!("printf '%s\\0' {input}");
            let out = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .expect("run sh");
            let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split('\0')
                .map(str::to_string)
                .collect();
            got.pop();
            assert_eq!(words, got, "for {input}");
        }
    }
}
