//! The notification as it leaves: rendered from the definition's template,
//! checked as rendered (the link in both bodies, no token in the subject),
//! and replaced by the built-in template when it fails. Every secure
//! recipient gets a notification they can open, whatever the template.

use super::{
    CompiledTemplate, HIDDEN_SUBJECT, MailHeaders, NotificationTemplate, NotificationVars,
    Rendered, TemplateError, TemplatePart, build_mail, escape_html,
};

/// The notification for `vars`, as RFC 5322 bytes, from `template` (the
/// definition's, parsed; an error when it did not parse).
///
/// Falls back, with an ERROR log naming the definition and the reason
/// (never the link), to the built-in template when the definition's does
/// not render or fails [`check_rendered`], and to a fixed text when even
/// the built-in one fails: the recipient must hear of the message, and
/// must be able to open it.
pub fn build_notification(
    template: Result<&CompiledTemplate, &TemplateError>,
    vars: &NotificationVars,
    headers: &MailHeaders<'_>,
) -> Vec<u8> {
    let link = vars.portal_link.as_str();
    let rendered = checked(template, vars).or_else(|reason| {
        tracing::error!(definition = %vars.definition, reason = %redacted(&reason, link), "notification template failed; used the built-in one");
        checked(NotificationTemplate::builtin().compile().as_ref(), vars)
    });
    let rendered = rendered.unwrap_or_else(|reason| {
        // The built-in template is tested; this is unreachable in practice,
        // but a notification must still go out.
        tracing::error!(definition = %vars.definition, reason = %redacted(&reason, link), "the built-in notification template failed");
        last_resort(link)
    });
    build_mail(&rendered, headers)
}

/// `template` rendered and passed by [`check_rendered`]; else why not.
fn checked(
    template: Result<&CompiledTemplate, &TemplateError>,
    vars: &NotificationVars,
) -> Result<Rendered, String> {
    let rendered = template
        .map_err(ToString::to_string)?
        .render(vars)
        .map_err(|e| e.to_string())?;
    check_rendered(&rendered, &vars.portal_link).map_err(|e| e.to_string())?;
    Ok(rendered)
}

/// A reason fit for the log: a minijinja message could quote a value,
/// and the token must never reach a log.
fn redacted(reason: &str, link: &str) -> String {
    match link.rsplit('/').next() {
        Some(token) if !token.is_empty() => reason.replace(token, "<token>"),
        _ => reason.to_owned(),
    }
}

/// A notification that needs no template: the neutral subject and the link.
fn last_resort(link: &str) -> Rendered {
    let link_html = escape_html(link);
    Rendered {
        subject: HIDDEN_SUBJECT.to_owned(),
        text: format!("{HIDDEN_SUBJECT}. Open it at:\n\n{link}\n"),
        html: format!(
            "<p>{HIDDEN_SUBJECT}. Open it at:</p>\n<p><a href=\"{link_html}\">{link_html}</a></p>\n"
        ),
    }
}

/// Why a rendered notification may not be sent as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error(
        "the text part must show {{{{ portal_link }}}}: without it the recipient cannot open the message"
    )]
    NoLinkInText,
    #[error(
        "the html part must show {{{{ portal_link }}}}: without it the recipient cannot open the message"
    )]
    NoLinkInHtml,
    #[error(
        "the subject must not contain the portal link's token: the link is the recipient's secret"
    )]
    TokenInSubject,
}

impl Unsendable {
    /// The template part at fault.
    pub fn part(self) -> TemplatePart {
        match self {
            Unsendable::NoLinkInText => TemplatePart::Text,
            Unsendable::NoLinkInHtml => TemplatePart::Html,
            Unsendable::TokenInSubject => TemplatePart::Subject,
        }
    }
}

/// The shortest run of the token's characters that counts as showing it.
const TOKEN_WINDOW: usize = 8;

/// Checks the notification that is about to be sent, whatever its template
/// did: the text part shows `link` whole, the HTML part (outside comments)
/// shows it raw or HTML-escaped, and the subject carries no run of
/// [`TOKEN_WINDOW`] characters of the token (the link's last path segment),
/// in any case, forward or reversed, even with other characters between.
///
/// # Errors
/// The first check that fails.
pub fn check_rendered(rendered: &Rendered, link: &str) -> Result<(), Unsendable> {
    if !shows_link(&rendered.text, link) {
        return Err(Unsendable::NoLinkInText);
    }
    let html = without_html_comments(&rendered.html);
    if !shows_link(&html, link) && !shows_link(&html, &escape_html(link)) {
        return Err(Unsendable::NoLinkInHtml);
    }
    let token = link.rsplit('/').next().unwrap_or_default();
    if carries_token(&rendered.subject, token) {
        return Err(Unsendable::TokenInSubject);
    }
    Ok(())
}

/// Whether `text` has `link` followed by something that ends a URL: a
/// link printed as `{{ portal_link }}x` opens nothing.
fn shows_link(text: &str, link: &str) -> bool {
    !link.is_empty()
        && text.match_indices(link).any(|(at, _)| {
            !text[at + link.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '~' | '%' | '/'))
        })
}

/// `html` with its comments removed; an unclosed comment runs to the end.
fn without_html_comments(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = match rest[start + 4..].find("-->") {
            Some(end) => &rest[start + 4 + end + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Whether `subject` holds [`TOKEN_WINDOW`] consecutive characters of
/// `token`, forward or reversed, ignoring case and anything that is not a
/// letter or digit (`{{ portal_link|join(" ") }}`).
fn carries_token(subject: &str, token: &str) -> bool {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let subject = fold(subject);
    let token = fold(token);
    let window = TOKEN_WINDOW.min(token.len());
    if window == 0 {
        return false;
    }
    let reversed: Vec<char> = token.iter().rev().copied().collect();
    [token, reversed].iter().any(|t| {
        t.windows(window)
            .any(|w| subject.windows(window).any(|s| s == w))
    })
}
