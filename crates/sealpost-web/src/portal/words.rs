//! Every word the portal shows a recipient, in one place, so that a
//! translation is one more value of [`Words`] and no template holds
//! English of its own. English first.

use serde::Serialize;

/// The portal's user-facing strings. Templates read them as `t.<field>`;
/// `{name}`-style placeholders are filled by the template, never by
/// formatting user input into these strings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Words {
    /// The language, for `<html lang>`.
    pub lang: &'static str,
    pub skip_to_content: &'static str,
    pub sign_in_title: &'static str,
    pub sign_in_intro: &'static str,
    pub email_label: &'static str,
    pub password_label: &'static str,
    pub sign_in_button: &'static str,
    pub forgot_password: &'static str,
    pub first_visit_hint: &'static str,
    pub help_prefix: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub back_to_sign_in: &'static str,
    pub secure_footer: &'static str,
}

impl Words {
    /// English.
    pub const ENGLISH: Words = Words {
        lang: "en",
        skip_to_content: "Skip to content",
        sign_in_title: "Sign in",
        sign_in_intro: "Sign in to read the secure messages sent to you.",
        email_label: "Email address",
        password_label: "Password",
        sign_in_button: "Sign in",
        forgot_password: "Forgot your password?",
        first_visit_hint: "First time here? Open the link in the email that told you about your \
                           secure message; it lets you choose a password.",
        help_prefix: "Need help? Contact",
        not_found_title: "Page not found",
        not_found_text: "There is nothing here. If you followed a link from an email, it may \
                         have expired or been mistyped.",
        back_to_sign_in: "Go to sign in",
        secure_footer: "Messages here are kept encrypted and shown only to their recipients.",
    };
}
