//! What the registry accepts as a model name, a version, an actor, a reason, an event ID or
//! an artifact file name: a name becomes a directory or an object key, so a separator, a
//! `..` or a control character could reach outside the registry or garble a listing.

use super::RegistryError;

/// The longest model name, in bytes.
pub const MAX_MODEL_NAME: usize = 100;
/// The longest actor, event ID or trainer kind, in bytes.
pub const MAX_LABEL: usize = 200;
/// The longest reason, in bytes.
pub const MAX_REASON: usize = 4_000;

/// How many characters of a refused value an error quotes: a 10 KB name must not become a
/// 10 KB message.
pub const QUOTED_CHARS: usize = 80;

/// `value` as an error quotes it: in full when short, else its first [`QUOTED_CHARS`]
/// characters and its length.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

pub(super) fn invalid(what: &'static str, value: &str, problem: impl Into<String>) -> RegistryError {
    RegistryError::Invalid { what, value: quote(value), problem: problem.into() }
}

/// Checks a model name: 1 to [`MAX_MODEL_NAME`] ASCII letters, digits, `.`, `_` or `-`,
/// not starting with `.` or `-`, without `..`.
pub fn check_model(name: &str) -> Result<(), RegistryError> {
    let rule =
        "a model name is 1 to 100 ASCII letters, digits, '.', '_' or '-', not starting with '.' or '-'";
    if name.is_empty() {
        return Err(invalid("model name", name, format!("empty; {rule}")));
    }
    if name.len() > MAX_MODEL_NAME {
        return Err(invalid("model name", name, format!("{} bytes long; {rule}", name.len())));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        let kind = match c {
            '/' | '\\' => "a path separator",
            c if c.is_control() => "a control character",
            _ => "a character names may not hold",
        };
        return Err(invalid("model name", name, format!("contains {c:?} ({kind}); {rule}")));
    }
    if name.contains("..") {
        return Err(invalid("model name", name, format!("contains \"..\"; {rule}")));
    }
    if name.starts_with(['.', '-']) {
        return Err(invalid("model name", name, format!("starts with {:?}; {rule}", &name[..1])));
    }
    Ok(())
}

/// Parses a version as given on a command line: `3` or `v3`, from 1.
pub fn parse_version(s: &str) -> Result<u32, RegistryError> {
    let digits = s.strip_prefix('v').unwrap_or(s);
    match digits.parse::<u32>() {
        Ok(0) => Err(invalid("version", s, "versions are numbered from 1")),
        Ok(v) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(v),
        _ => Err(invalid("version", s, "not a version number (1, 2, ... or v1, v2, ...)")),
    }
}

/// Checks a one-line label (actor, event ID, trainer kind): not empty, at most
/// [`MAX_LABEL`] bytes, no control character.
pub fn check_label(what: &'static str, value: &str) -> Result<(), RegistryError> {
    if value.trim().is_empty() {
        return Err(invalid(what, value, "empty"));
    }
    if value.len() > MAX_LABEL {
        return Err(invalid(what, value, format!("{} bytes long, at most {MAX_LABEL}", value.len())));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(what, value, format!("contains the control character {c:?}")));
    }
    Ok(())
}

/// Checks a reason: not blank, at most [`MAX_REASON`] bytes; line breaks and tabs are kept, other
/// control characters (which would garble a terminal showing the log) refused.
pub fn check_reason(value: &str) -> Result<(), RegistryError> {
    if value.trim().is_empty() {
        return Err(invalid("reason", value, "empty: say why, for the audit log"));
    }
    if value.len() > MAX_REASON {
        return Err(invalid("reason", value, format!("{} bytes long, at most {MAX_REASON}", value.len())));
    }
    if let Some(c) = value.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        return Err(invalid("reason", value, format!("contains the control character {c:?}")));
    }
    Ok(())
}

/// Checks one component of an artifact file's path: a plain name, no control character.
pub fn check_file_name(name: &str) -> Result<(), RegistryError> {
    if name.is_empty() || name == "." || name == ".." || name.len() > 255 {
        return Err(invalid("artifact file name", name, "not a plain file name"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || matches!(c, '/' | '\\')) {
        return Err(invalid("artifact file name", name, format!("contains {c:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_that_could_leave_the_registry_are_refused_with_the_reason() {
        for ok in ["pii", "pii-confidence", "pii_v2.small", "A1"] {
            check_model(ok).unwrap();
        }
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "path separator"),
            ("a\\b", "path separator"),
            ("..", "\"..\""),
            ("a..b", "\"..\""),
            (".hidden", "starts with"),
            ("-flag", "starts with"),
            ("a\nb", "control character"),
            ("a b", "may not hold"),
        ] {
            let e = check_model(bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("model name"), "{bad:?}: {e}");
        }
        let long = "m".repeat(MAX_MODEL_NAME + 1);
        assert!(check_model(&long).unwrap_err().to_string().contains("101 bytes"));
    }

    #[test]
    fn a_long_refused_value_is_quoted_cut_with_its_length() {
        let huge = "n".repeat(10_000);
        let e = check_model(&huge).unwrap_err().to_string();
        assert!(e.len() < 400, "{} bytes: {e}", e.len());
        assert!(e.contains(&format!("{:?}… (10000 bytes)", "n".repeat(QUOTED_CHARS))), "{e}");
        let e = check_reason(&"r\u{7}".repeat(50_000)).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("100000 bytes"), "{e}");
        assert_eq!(quote("short"), "\"short\"");
    }

    #[test]
    fn versions_parse_with_or_without_v_and_never_zero() {
        assert_eq!(parse_version("3").unwrap(), 3);
        assert_eq!(parse_version("v12").unwrap(), 12);
        for bad in ["0", "v0", "-1", "+1", "x", "", "99999999999", "1.0"] {
            assert!(parse_version(bad).unwrap_err().to_string().contains("version"), "{bad:?}");
        }
    }

    #[test]
    fn labels_and_reasons_refuse_control_characters() {
        check_label("actor", "cli").unwrap();
        assert!(check_label("actor", "a\u{1b}[31m").unwrap_err().to_string().contains("control"));
        assert!(check_label("actor", " ").is_err());
        check_reason("line one\nline two\tok").unwrap();
        for blank in ["", "   ", "\n\t"] {
            assert!(check_reason(blank).unwrap_err().to_string().contains("invalid reason"), "{blank:?}");
        }
        assert!(check_reason("bell\u{7}").unwrap_err().to_string().contains("control"));
        assert!(check_reason(&"r".repeat(MAX_REASON + 1)).is_err());
        assert!(check_file_name("..").is_err() && check_file_name("a\u{0}").is_err());
    }
}
