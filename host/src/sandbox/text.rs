//! Strings a guest controls — its errors, the lines it prints, its description — as the
//! server shows them in results, notifications, log lines and files: at most
//! [`MAX_GUEST_TEXT`] bytes, with a note saying how long the string was when it is cut, and
//! control characters escaped, so that a guest can neither flood a reply or a log nor write
//! terminal escapes into one.

/// Most bytes of a guest string the server shows.
pub const MAX_GUEST_TEXT: usize = 4096;

/// `text`, from a guest, fit to show: control characters escaped (`\n`, `\u{1b}`), and cut
/// at [`MAX_GUEST_TEXT`] bytes with a note of its whole length.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_GUEST_TEXT) + 64);
    for (at, c) in text.char_indices() {
        let before = out.len();
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > MAX_GUEST_TEXT {
            out.truncate(before);
            let rest = text.len() - at;
            out.push_str(&format!(
                "… (cut: {} bytes in all, {rest} not shown)",
                text.len()
            ));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_with_control_characters_escaped() {
        assert_eq!(
            shown("loss went\tNaN\n\u{1b}[31m"),
            "loss went\\tNaN\\n\\u{1b}[31m"
        );
        assert_eq!(shown("ünïcode ✓"), "ünïcode ✓");
    }

    #[test]
    fn long_text_is_cut_with_a_note_of_its_length() {
        let long = "é".repeat(3 << 20);
        let cut = shown(&long);
        assert!(cut.len() < MAX_GUEST_TEXT + 80, "{}", cut.len());
        let note = format!(
            "… (cut: {} bytes in all, {} not shown)",
            long.len(),
            long.len() - MAX_GUEST_TEXT
        );
        assert!(cut.ends_with(&note), "{cut}");
        let exact = "a".repeat(MAX_GUEST_TEXT);
        assert_eq!(shown(&exact), exact);
    }
}
