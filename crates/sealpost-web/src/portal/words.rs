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
    pub sign_in_failed: &'static str,
    pub too_many_title: &'static str,
    pub too_many_text: &'static str,
    pub form_expired_title: &'static str,
    pub form_expired_text: &'static str,
    pub first_visit_title: &'static str,
    pub first_visit_intro: &'static str,
    pub from_label: &'static str,
    pub subject_label: &'static str,
    pub expires_label: &'static str,
    pub address_label: &'static str,
    pub new_password_label: &'static str,
    pub confirm_password_label: &'static str,
    pub password_rules: &'static str,
    pub passwords_differ: &'static str,
    pub choose_password_button: &'static str,
    pub returning_title: &'static str,
    pub returning_intro: &'static str,
    pub open_button: &'static str,
    pub link_expired_title: &'static str,
    pub link_expired_text: &'static str,
    pub send_new_link_button: &'static str,
    pub new_link_sent_title: &'static str,
    pub new_link_sent_text: &'static str,
    pub forgot_title: &'static str,
    pub forgot_intro: &'static str,
    pub forgot_button: &'static str,
    pub forgot_sent_title: &'static str,
    pub forgot_sent_text: &'static str,
    pub reset_title: &'static str,
    pub reset_intro: &'static str,
    pub reset_button: &'static str,
    pub reset_invalid_title: &'static str,
    pub reset_invalid_text: &'static str,
    pub ask_again: &'static str,
    pub inbox_title: &'static str,
    pub inbox_empty: &'static str,
    pub signed_in_as: &'static str,
    pub sign_out_button: &'static str,
    pub date_label: &'static str,
    pub unread_label: &'static str,
    pub no_subject: &'static str,
    pub subject_hidden: &'static str,
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
        sign_in_failed: "That address and password do not match an account, or there were too many attempts. Check them, or wait a few minutes and try again.",
        too_many_title: "Too many attempts",
        too_many_text: "There were too many attempts from your network. Wait a minute, then try again.",
        form_expired_title: "Please try again",
        form_expired_text: "This form has expired or was sent from another site. Go back, reload the page and send it again.",
        first_visit_title: "Choose a password",
        first_visit_intro: "You have received a secure message. Choose a password to read it, now and next time.",
        from_label: "From",
        subject_label: "Subject",
        expires_label: "Readable until",
        address_label: "Your address",
        new_password_label: "New password",
        confirm_password_label: "Type it again",
        password_rules: "At least 12 characters. A few unusual words together are easy to remember and hard to guess.",
        passwords_differ: "The two passwords are not the same. Type them again.",
        choose_password_button: "Save password and open",
        returning_title: "Enter your password",
        returning_intro: "You already chose a password for this address. Enter it to open the message.",
        open_button: "Open",
        link_expired_title: "This link has expired",
        link_expired_text: "For your security, the link in the email works only for a limited time. We can email you a new one.",
        send_new_link_button: "Email me a new link",
        new_link_sent_title: "Check your email",
        new_link_sent_text: "If a secure message is still waiting for you, a new link is on its way to your address. It may take a few minutes.",
        forgot_title: "Forgot your password?",
        forgot_intro: "Enter your address. We will email you a link to choose a new password.",
        forgot_button: "Email me a link",
        forgot_sent_title: "Check your email",
        forgot_sent_text: "If there is an account for this address, a link to choose a new password is on its way. It works once, for a short time.",
        reset_title: "Choose a new password",
        reset_intro: "Choose a new password for your account. You will be signed out everywhere else.",
        reset_button: "Save new password",
        reset_invalid_title: "This link no longer works",
        reset_invalid_text: "A password link works once and for a short time. Ask for a new one.",
        ask_again: "Ask for a new link",
        inbox_title: "Inbox",
        inbox_empty: "There are no secure messages for you right now.",
        signed_in_as: "Signed in as",
        sign_out_button: "Sign out",
        date_label: "Date",
        unread_label: "Unread",
        no_subject: "(no subject)",
        subject_hidden: "(subject hidden by the sender)",
    };
}

/// The portal's own mails (password reset, new registration link). In the
/// bodies, `{address}`, `{product}`, `{expires}` and `{link}` are filled
/// with our own values; a blank line separates paragraphs. Subjects never
/// hold the link.
#[derive(Debug, Clone, Copy)]
pub struct MailWords {
    pub reset_subject: &'static str,
    pub reset_body: &'static str,
    pub register_subject: &'static str,
    pub register_body: &'static str,
    pub open_link: &'static str,
    pub ignore: &'static str,
}

impl MailWords {
    /// English.
    pub const ENGLISH: MailWords = MailWords {
        reset_subject: "Reset your password",
        reset_body: "Someone asked to choose a new password for {address} at {product}.\r\n\r\n\
                     To choose one, open this link before {expires}. It works once:\r\n\r\n{link}",
        register_subject: "Your new link to your secure messages",
        register_body: "You asked for a new link to the secure messages sent to {address} at \
                        {product}.\r\n\r\nOpen this link before {expires} to choose your \
                        password. It works once:\r\n\r\n{link}",
        open_link: "Open the link",
        ignore: "If you did not ask for this, ignore this email: nothing changes.",
    };
}
