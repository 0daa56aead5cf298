//! A CSV file posted from a console form (`multipart/form-data`): the
//! form's token and the file, read whole. The route's body limit bounds
//! the size; the caller checks the token before using the file.

use axum::extract::Multipart;

/// Largest file a console import takes (the API's bulk limit).
pub(super) const MAX_UPLOAD: usize = crate::api::MAX_BULK_BODY;

/// What an import form posts.
#[derive(Debug, Default)]
pub(super) struct Upload {
    pub(super) csrf: String,
    pub(super) file_name: String,
    pub(super) text: String,
}

/// Reads the form's `csrf` and `file` fields.
///
/// # Errors
/// A message for the administrator: the body is not a form, too large, or
/// the file is not UTF-8 text.
pub(super) async fn read(mut multipart: Multipart) -> Result<Upload, String> {
    let mut upload = Upload::default();
    let mut file = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(format!("the upload could not be read: {}", e.body_text())),
        };
        match field.name() {
            Some("csrf") => {
                upload.csrf = field
                    .text()
                    .await
                    .map_err(|e| format!("the upload could not be read: {}", e.body_text()))?;
            }
            Some("file") => {
                upload.file_name = field.file_name().unwrap_or_default().to_owned();
                file = Some(
                    field
                        .bytes()
                        .await
                        .map_err(|e| format!("the upload could not be read: {}", e.body_text()))?,
                );
            }
            _ => {}
        }
    }
    let file = file.ok_or("choose a CSV file to import")?;
    if file.is_empty() {
        return Err("the file is empty".to_owned());
    }
    upload.text = String::from_utf8(file.to_vec())
        .map_err(|_| "the file is not UTF-8 text: save it as CSV UTF-8".to_owned())?;
    Ok(upload)
}
