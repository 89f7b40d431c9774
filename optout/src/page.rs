//! The HTML pages a subscriber sees: UTF-8, a phone-sized viewport, inline minimal CSS, no
//! JavaScript and no external resources. Every value put in a page goes through [`escape`].
//! The subscriber's number is shown masked ([`mask`]): the link may be opened by someone
//! looking over a shoulder, and the page needs only enough to recognize the number.

use std::fmt::Write as _;

use crate::error::TokenError;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The number as the page shows it: `…` and its last 4 digits (the last 2 of a number of 6
/// digits or fewer).
pub fn mask(subscriber: &str) -> String {
    let shown = if subscriber.len() > 6 { 4 } else { 2 };
    let tail = subscriber
        .get(subscriber.len().saturating_sub(shown)..)
        .unwrap_or("");
    format!("…{tail}")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1.5rem;\
line-height:1.5;color:#111;background:#fafafa}main{max-width:32rem;margin:0 auto}\
h1{font-size:1.4rem}button{font-size:1.1rem;padding:.8rem 1.2rem;width:100%;border:0;\
border-radius:.4rem;background:#b00020;color:#fff}button.undo{background:#555}\
p.note{color:#555;font-size:.9rem}";

/// A whole page around `body` (already HTML) with `title` (text).
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>{}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{}</h1>\n{body}</main></body></html>\n",
        escape(title),
        escape(title)
    )
}

/// Who and what a page is about: the token's firm and subscriber, and the path the form
/// posts to.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The token text (the form posts back to `/u/{token}`).
    pub token: &'a str,
    /// The firm's vetted name.
    pub firm_name: &'a str,
    /// The subscriber's number (shown masked).
    pub subscriber: &'a str,
}

fn stop_form(subject: &Subject<'_>) -> String {
    format!(
        "<form method=\"post\" action=\"/u/{}\"><input type=\"hidden\" name=\"action\" value=\"opt-out\">\
<button type=\"submit\">Stop calls from {}</button></form>\n",
        escape(subject.token),
        escape(subject.firm_name)
    )
}

fn undo_form(subject: &Subject<'_>) -> String {
    format!(
        "<form method=\"post\" action=\"/u/{}\"><input type=\"hidden\" name=\"action\" value=\"undo\">\
<button type=\"submit\" class=\"undo\">Undo</button></form>\n",
        escape(subject.token)
    )
}

/// The page of a link whose subscriber has not opted out: the firm, the number, one button.
pub fn confirm(subject: &Subject<'_>) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>You received a marketing call from <strong>{}</strong> on your number ending \
{}.</p>\n<p>Press the button to stop marketing calls from {} to this number.</p>\n",
        escape(subject.firm_name),
        escape(&mask(subject.subscriber)),
        escape(subject.firm_name)
    );
    body.push_str(&stop_form(subject));
    layout(&format!("Stop calls from {}", subject.firm_name), &body)
}

/// The result of an opt-out: `changed` false when it was already done.
pub fn opted_out(subject: &Subject<'_>, changed: bool) -> String {
    let mut body = String::new();
    if !changed {
        body.push_str("<p><strong>Already done.</strong></p>\n");
    }
    let _ = write!(
        body,
        "<p>You will no longer receive marketing calls from <strong>{}</strong> on number \
{}.</p>\n<p class=\"note\">Changed your mind? You can undo this.</p>\n",
        escape(subject.firm_name),
        escape(&mask(subject.subscriber))
    );
    body.push_str(&undo_form(subject));
    let title = if changed {
        "Calls stopped"
    } else {
        "Calls already stopped"
    };
    layout(title, &body)
}

/// The result of an undo: `changed` false when there was nothing to undo.
pub fn undone(subject: &Subject<'_>, changed: bool) -> String {
    let mut body = String::new();
    if !changed {
        body.push_str("<p><strong>Nothing to undo.</strong></p>\n");
    }
    let _ = writeln!(
        body,
        "<p>Marketing calls from <strong>{}</strong> to number {} are allowed again.</p>",
        escape(subject.firm_name),
        escape(&mask(subject.subscriber))
    );
    body.push_str(&stop_form(subject));
    layout("Calls allowed", &body)
}

/// The page for a refused token: why, in plain words, and that nothing changed.
pub fn refused(error: &TokenError) -> String {
    let (title, why) = match error {
        TokenError::Expired { .. } => (
            "This link has expired",
            "Unsubscribe links are valid for a limited time. Use the link from a more recent \
message, or ask your carrier.",
        ),
        TokenError::BadMac => (
            "This link is not valid",
            "The link has been changed since it was sent, so it cannot be used. Open the link \
exactly as you received it.",
        ),
        _ => (
            "This link is not valid",
            "The link is incomplete or damaged. Copy the whole link from the message you \
received.",
        ),
    };
    layout(
        title,
        &format!(
            "<p>{}</p>\n<p><strong>Nothing was changed.</strong></p>\n",
            escape(why)
        ),
    )
}

/// A page for another failure (not found, too large, too many requests, ...).
pub fn message(title: &str, text: &str) -> String {
    layout(title, &format!("<p>{}</p>\n", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped_and_the_number_masked() {
        let subject = Subject {
            token: "abc.def",
            firm_name: "<script>alert('x')</script> & Co \"Ltd\"",
            subscriber: "8613800138000",
        };
        let page = confirm(&subject);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page
            .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co &quot;Ltd&quot;"));
        assert!(!page.contains("8613800138000"));
        assert!(page.contains("…8000"));
        assert!(page.contains("<form method=\"post\" action=\"/u/abc.def\">"));
        assert!(page.contains("width=device-width"));
        assert_eq!(mask("12345"), "…45");
        assert_eq!(mask(""), "…");
    }
}
