//! The body the page's button posts (`application/x-www-form-urlencoded`): an optional
//! `action`, `opt-out` (the default) or `undo`. Other fields are ignored, as browsers may add
//! some; `action` given twice is refused rather than guessed.

use crate::error::FormError;

/// What the button asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormAction {
    /// Stop the firm's calls.
    OptOut,
    /// Allow them again.
    Undo,
}

/// Parses a form body (already capped by the server).
pub fn parse_form(body: &[u8]) -> Result<FormAction, FormError> {
    let text = std::str::from_utf8(body).map_err(|_| FormError::NotText)?;
    let mut action = None;
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "action" {
            continue;
        }
        // The two accepted values need no percent-decoding; anything encoded is unknown.
        let parsed = match value {
            "opt-out" => FormAction::OptOut,
            "undo" => FormAction::Undo,
            other => return Err(FormError::UnknownAction(other.chars().take(40).collect())),
        };
        if action.replace(parsed).is_some() {
            return Err(FormError::DuplicateAction);
        }
    }
    Ok(action.unwrap_or(FormAction::OptOut))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_read_and_oddities_refused() {
        assert_eq!(parse_form(b"").unwrap(), FormAction::OptOut);
        assert_eq!(parse_form(b"action=opt-out").unwrap(), FormAction::OptOut);
        assert_eq!(parse_form(b"x=1&action=undo&").unwrap(), FormAction::Undo);
        assert_eq!(
            parse_form(b"action=undo&action=undo"),
            Err(FormError::DuplicateAction)
        );
        assert_eq!(
            parse_form(b"action=delete"),
            Err(FormError::UnknownAction("delete".into()))
        );
        assert_eq!(parse_form(&[0xff, 0xfe]), Err(FormError::NotText));
    }
}
