//! Text from apps and clients on its way into the supervisor's log: one
//! log line per event, whatever the text holds. Control characters (CR,
//! LF, ESC, …), Unicode line separators and backslashes are written as
//! escapes, so app output can never forge a line or pass for an escape;
//! and a line is clipped to a bound.

use std::borrow::Cow;

/// Longest app-provided text put into one log line, in bytes.
pub const MAX_TEXT: usize = 8 * 1024;

/// `text` safe for one log line: escaped, and clipped to [`MAX_TEXT`].
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs =
        |c: char| (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}' | '\\');
    if text.len() <= MAX_TEXT && !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_TEXT) + 8);
    for c in text.chars() {
        if out.len() >= MAX_TEXT {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if needs(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(escape("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape("a\nINFO fazt ready\r\n"),
            "a\\nINFO fazt ready\\r\\n"
        );
        assert_eq!(escape("\u{1b}[31mred"), "\\u{001b}[31mred");
        assert_eq!(escape("x\u{2028}y\u{0}"), "x\\u{2028}y\\u{0000}");
        assert!(!escape("a\nb\u{85}c").contains(['\n', '\u{85}']));
        // A literal backslash-n is told apart from an escaped line break.
        assert_eq!(escape("a\\nb"), "a\\\\nb");
    }

    #[test]
    fn long_text_is_clipped() {
        let long = "x".repeat(MAX_TEXT * 3);
        let shown = escape(&long);
        assert!(shown.len() <= MAX_TEXT + 4, "{}", shown.len());
        assert!(shown.ends_with('…'));
    }
}
