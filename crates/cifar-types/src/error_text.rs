//! One clean paragraph from an error and its causes, for the programs' `error: ...` line.

/// The messages of an error and its causes (outermost first) joined by `: `, without repeating what a message
/// already says: a cause whose text the message already holds (an OS error that a library error displays and
/// also returns as its source) is left out, and a cause that starts with the path the text so far ends with
/// (`--checkpoint X` then `X: not a valid ...`) drops that path.
///
/// ```
/// let text = cifar10_types::error_text::one_paragraph([
///     "--from data/x.tar.gz".to_string(),
///     "data/x.tar.gz: No such file or directory (os error 2)".to_string(),
///     "No such file or directory (os error 2)".to_string(),
/// ]);
/// assert_eq!(text, "--from data/x.tar.gz: No such file or directory (os error 2)");
/// ```
pub fn one_paragraph(causes: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for text in causes {
        if out.is_empty() {
            out = text;
            continue;
        }
        if out.contains(&text) {
            continue;
        }
        let last_word = out.rsplit(' ').next().unwrap_or_default();
        let text = match text.strip_prefix(last_word) {
            Some(rest) if !last_word.is_empty() && rest.starts_with(": ") => &rest[2..],
            _ => &text,
        };
        out.push_str(": ");
        out.push_str(text);
    }
    out
}
