//! Every word the portal shows a recipient, in one place, so that a
//! translation is one more value of [`Words`] and no template holds
//! English of its own. English first.

use serde::Serialize;

use crate::auth::password::{Suggestion, Warning, WeakPassword};

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
    // Opening a message (message.rs).
    pub message_title: &'static str,
    pub to_label: &'static str,
    pub cc_label: &'static str,
    pub attachments_label: &'static str,
    pub download_label: &'static str,
    pub size_bytes: &'static str,
    pub size_kb: &'static str,
    pub size_mb: &'static str,
    pub remote_blocked: &'static str,
    pub show_remote_images: &'static str,
    pub frame_title: &'static str,
    pub empty_body: &'static str,
    pub back_to_inbox: &'static str,
    pub back_to_sent: &'static str,
    pub sent_copy_hint: &'static str,
    pub mark_unread_button: &'static str,
    pub mark_read_button: &'static str,
    pub delete_button: &'static str,
    pub reply_button: &'static str,
    pub reply_all_button: &'static str,
    pub forward_button: &'static str,
    pub print_button: &'static str,
    pub message_actions: &'static str,
    pub in_deleted: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub recalled_title: &'static str,
    pub recalled_text: &'static str,
    pub ended_on: &'static str,
    pub print_refused_title: &'static str,
    pub print_refused_text: &'static str,
    pub back_to_message: &'static str,
    pub print_hint: &'static str,
    // Mailbox folders, reply and forward (issue 15 items 3 and 5).
    pub sent_title: &'static str,
    pub deleted_title: &'static str,
    pub folders_label: &'static str,
    pub sent_empty: &'static str,
    pub deleted_empty: &'static str,
    pub search_label: &'static str,
    pub search_sent_label: &'static str,
    pub search_button: &'static str,
    pub search_clear: &'static str,
    pub search_none: &'static str,
    pub older_link: &'static str,
    pub newest_link: &'static str,
    pub attachment_label: &'static str,
    pub expires_soon: &'static str,
    pub expired_label: &'static str,
    pub restore_button: &'static str,
    pub reply_sent_notice: &'static str,
    pub restored_notice: &'static str,
    pub restore_refused: &'static str,
    pub reply_title: &'static str,
    pub reply_all_title: &'static str,
    pub forward_title: &'static str,
    pub reply_to_label: &'static str,
    pub forward_to_label: &'static str,
    pub reply_body_label: &'static str,
    pub reply_attachments_label: &'static str,
    pub reply_max_upload: &'static str,
    pub reply_secure_hint: &'static str,
    pub reply_quote_label: &'static str,
    pub reply_send_button: &'static str,
    pub reply_cancel: &'static str,
    pub reply_regarding: &'static str,
    pub reply_too_large: &'static str,
    pub reply_bad_address: &'static str,
    pub reply_no_recipient: &'static str,
    pub reply_too_many: &'static str,
    pub reply_failed: &'static str,
    pub reply_not_allowed_title: &'static str,
    pub reply_not_allowed_text: &'static str,
    /// A page that failed on our side (plain text).
    pub something_failed: &'static str,
    /// `{min}` and `{chars}`: numbers.
    pub password_too_short: &'static str,
    /// `{max}`: a number.
    pub password_too_long: &'static str,
    pub password_guessable: &'static str,
    /// When zxcvbn has no advice of its own.
    pub password_default_advice: &'static str,
    /// What zxcvbn found, in these words.
    #[serde(skip)]
    pub password_warning: fn(Warning) -> &'static str,
    /// What zxcvbn suggests, in these words.
    #[serde(skip)]
    pub password_suggestion: fn(Suggestion) -> &'static str,
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
        // Opening a message (message.rs).
        message_title: "Message",
        to_label: "To",
        cc_label: "Cc",
        attachments_label: "Attachments",
        download_label: "Download",
        size_bytes: "bytes",
        size_kb: "KB",
        size_mb: "MB",
        remote_blocked: "Pictures from other websites are hidden to protect your privacy.",
        show_remote_images: "Show remote images",
        frame_title: "Message content",
        empty_body: "This message has no text.",
        back_to_inbox: "Back to inbox",
        back_to_sent: "Back to Sent",
        sent_copy_hint: "You sent this message from the portal.",
        mark_unread_button: "Mark as unread",
        mark_read_button: "Mark as read",
        delete_button: "Delete",
        reply_button: "Reply",
        reply_all_button: "Reply all",
        forward_button: "Forward",
        print_button: "Print",
        message_actions: "Message actions",
        in_deleted: "This message is in Deleted.",
        expired_title: "This message has expired",
        expired_text: "The sender set this message to be readable for a limited time, and that time is over. Its content has been removed. If you still need it, ask the sender to send it again.",
        recalled_title: "This message was withdrawn",
        recalled_text: "The sender withdrew this message, so it can no longer be read. If you still need it, contact the sender.",
        ended_on: "Ended",
        print_refused_title: "Printing is not allowed",
        print_refused_text: "The sender does not allow this message to be printed.",
        back_to_message: "Back to the message",
        print_hint: "Use your browser's Print command (Ctrl+P or ⌘P) if the button does not work.",
        sent_title: "Sent",
        deleted_title: "Deleted",
        folders_label: "Folders",
        sent_empty: "You have not replied to or forwarded any message yet.",
        deleted_empty: "There are no deleted messages.",
        search_label: "Search sender or subject",
        search_sent_label: "Search recipients or subject",
        search_button: "Search",
        search_clear: "Show all",
        search_none: "No message matches your search.",
        older_link: "Older messages",
        newest_link: "Newest messages",
        attachment_label: "Attachment",
        expires_soon: "Expires soon",
        expired_label: "No longer readable",
        restore_button: "Restore",
        reply_sent_notice: "Your message was sent securely.",
        restored_notice: "The message is back in your inbox.",
        restore_refused: "This message can no longer be restored: it expired or was withdrawn.",
        reply_title: "Reply",
        reply_all_title: "Reply to all",
        forward_title: "Forward",
        reply_to_label: "To",
        forward_to_label: "To (email addresses, separated by commas)",
        reply_body_label: "Your message",
        reply_attachments_label: "Attach files",
        reply_max_upload: "Your text and files together can be at most",
        reply_secure_hint: "Recipients outside the organisation get your message securely: they receive a link, never the text.",
        reply_quote_label: "Include the original message below my text",
        reply_send_button: "Send securely",
        reply_cancel: "Cancel",
        reply_regarding: "Regarding",
        reply_too_large: "Your text and files are too large together. Remove a file or send it in a second message.",
        reply_bad_address: "One of the addresses is not a valid email address:",
        reply_no_recipient: "There is nobody to send this to. Type at least one address.",
        reply_too_many: "Too many addresses. Send to at most 50 at a time.",
        reply_failed: "Your message could not be sent. Try again in a few minutes.",
        reply_not_allowed_title: "Not possible for this message",
        reply_not_allowed_text: "The sender does not allow this for this message.",
        something_failed: "Something went wrong. Try again in a few minutes.",
        password_too_short: "Use at least {min} characters (this one has {chars}). A few uncommon words together are easy to remember and hard to guess.",
        password_too_long: "Use at most {max} characters.",
        password_guessable: "This password is too easy to guess.",
        password_default_advice: "Add another word or two. Uncommon words are better.",
        password_warning: english_warning,
        password_suggestion: english_suggestion,
    };

    /// A refused password in these words: the rule it broke, or what made
    /// it guessable and what to do instead.
    pub fn weak_password(&self, weak: &WeakPassword) -> String {
        match weak {
            WeakPassword::TooShort { min, chars } => self
                .password_too_short
                .replace("{min}", &min.to_string())
                .replace("{chars}", &chars.to_string()),
            WeakPassword::TooLong { max } => {
                self.password_too_long.replace("{max}", &max.to_string())
            }
            WeakPassword::Guessable {
                warning,
                suggestions,
            } => {
                let mut text = vec![self.password_guessable];
                text.extend(warning.map(self.password_warning));
                text.extend(suggestions.iter().map(|s| (self.password_suggestion)(*s)));
                if suggestions.is_empty() {
                    text.push(self.password_default_advice);
                }
                text.join(" ")
            }
        }
    }
}

fn english_warning(warning: Warning) -> &'static str {
    match warning {
        Warning::StraightRowsOfKeysAreEasyToGuess => "Straight rows of keys are easy to guess.",
        Warning::ShortKeyboardPatternsAreEasyToGuess => {
            "Short keyboard patterns are easy to guess."
        }
        Warning::RepeatsLikeAaaAreEasyToGuess => "Repeats like \"aaa\" are easy to guess.",
        Warning::RepeatsLikeAbcAbcAreOnlySlightlyHarderToGuess => {
            "Repeats like \"abcabcabc\" are only slightly harder to guess than \"abc\"."
        }
        Warning::ThisIsATop10Password => "This is one of the 10 most common passwords.",
        Warning::ThisIsATop100Password => "This is one of the 100 most common passwords.",
        Warning::ThisIsACommonPassword => "This is a very common password.",
        Warning::ThisIsSimilarToACommonlyUsedPassword => {
            "This is similar to a commonly used password."
        }
        Warning::SequencesLikeAbcAreEasyToGuess => "Sequences like abc or 6543 are easy to guess.",
        Warning::RecentYearsAreEasyToGuess => "Recent years are easy to guess.",
        Warning::AWordByItselfIsEasyToGuess => "A word by itself is easy to guess.",
        Warning::DatesAreOftenEasyToGuess => "Dates are often easy to guess.",
        Warning::NamesAndSurnamesByThemselvesAreEasyToGuess => {
            "Names and surnames by themselves are easy to guess."
        }
        Warning::CommonNamesAndSurnamesAreEasyToGuess => {
            "Common names and surnames are easy to guess."
        }
    }
}

fn english_suggestion(suggestion: Suggestion) -> &'static str {
    match suggestion {
        Suggestion::UseAFewWordsAvoidCommonPhrases => "Use a few words; avoid common phrases.",
        Suggestion::NoNeedForSymbolsDigitsOrUppercaseLetters => {
            "There is no need for symbols, digits or capital letters."
        }
        Suggestion::AddAnotherWordOrTwo => "Add another word or two. Uncommon words are better.",
        Suggestion::CapitalizationDoesntHelpVeryMuch => "Capital letters do not help much.",
        Suggestion::AllUppercaseIsAlmostAsEasyToGuessAsAllLowercase => {
            "All capitals are almost as easy to guess as all lower case."
        }
        Suggestion::ReversedWordsArentMuchHarderToGuess => {
            "Reversed words are not much harder to guess."
        }
        Suggestion::PredictableSubstitutionsDontHelpVeryMuch => {
            "Predictable substitutions like '@' instead of 'a' do not help much."
        }
        Suggestion::UseALongerKeyboardPatternWithMoreTurns => {
            "Use a longer keyboard pattern with more turns."
        }
        Suggestion::AvoidRepeatedWordsAndCharacters => "Avoid repeated words and characters.",
        Suggestion::AvoidSequences => "Avoid sequences.",
        Suggestion::AvoidRecentYears => "Avoid recent years.",
        Suggestion::AvoidYearsThatAreAssociatedWithYou => {
            "Avoid years that are associated with you."
        }
        Suggestion::AvoidDatesAndYearsThatAreAssociatedWithYou => {
            "Avoid dates and years that are associated with you."
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_password_is_said_in_the_portals_words() {
        let t = Words::ENGLISH;
        assert_eq!(
            t.weak_password(&WeakPassword::TooShort { min: 12, chars: 8 }),
            "Use at least 12 characters (this one has 8). A few uncommon words \
             together are easy to remember and hard to guess."
        );
        assert_eq!(
            t.weak_password(&WeakPassword::TooLong { max: 256 }),
            "Use at most 256 characters."
        );
        assert_eq!(
            t.weak_password(&WeakPassword::Guessable {
                warning: Some(Warning::ThisIsATop10Password),
                suggestions: vec![Suggestion::AddAnotherWordOrTwo],
            }),
            "This password is too easy to guess. This is one of the 10 most common \
             passwords. Add another word or two. Uncommon words are better."
        );
        assert_eq!(
            t.weak_password(&WeakPassword::Guessable {
                warning: None,
                suggestions: vec![],
            }),
            "This password is too easy to guess. Add another word or two. Uncommon \
             words are better."
        );
    }
}
