//! The rules for names and paths, checked at every edge (API, shell, mount).

use crate::error::ErrorKind;

/// Longest name of one directory entry, in bytes (as in Linux's NAME_MAX).
pub const NAME_MAX_BYTES: usize = 255;
/// Longest absolute path, in bytes (as in Linux's PATH_MAX).
pub const PATH_MAX_BYTES: usize = 4096;

/// Why a name or path was refused: the errno kind and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NameError {
    pub kind: ErrorKind,
    pub message: String,
}

fn refuse(kind: ErrorKind, message: String) -> NameError {
    NameError { kind, message }
}

/// Checks one directory-entry name: not empty, not `.` or `..`, no `/` or NUL,
/// at most [`NAME_MAX_BYTES`] bytes.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(refuse(ErrorKind::EINVAL, "empty name".into()));
    }
    if name == "." || name == ".." {
        return Err(refuse(ErrorKind::EINVAL, format!("name {name:?} is reserved")));
    }
    if name.contains('/') {
        return Err(refuse(ErrorKind::EINVAL, format!("name {name:?} contains '/'")));
    }
    if name.contains('\0') {
        return Err(refuse(ErrorKind::EINVAL, "name contains a NUL byte".into()));
    }
    if name.len() > NAME_MAX_BYTES {
        return Err(refuse(ErrorKind::ENAMETOOLONG, format!("name of {} bytes is over the limit of {NAME_MAX_BYTES}", name.len())));
    }
    Ok(())
}

/// Splits an absolute path into validated components. `/` gives no component;
/// repeated and trailing slashes are tolerated, `.` and `..` are not (the
/// API takes canonical paths; the shell resolves them before asking).
pub fn split_path(path: &str) -> Result<Vec<&str>, NameError> {
    if !path.starts_with('/') {
        return Err(refuse(ErrorKind::EINVAL, format!("path {path:?} is not absolute")));
    }
    if path.len() > PATH_MAX_BYTES {
        return Err(refuse(ErrorKind::ENAMETOOLONG, format!("path of {} bytes is over the limit of {PATH_MAX_BYTES}", path.len())));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        validate_name(part)?;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for n in ["a", "file.txt", "..hidden", "...", "ünïcødé", "with space", &"x".repeat(255)] {
            assert_eq!(validate_name(n), Ok(()), "{n:?}");
        }
    }

    #[test]
    fn bad_names_get_their_errno() {
        let cases = [("", ErrorKind::EINVAL), (".", ErrorKind::EINVAL), ("..", ErrorKind::EINVAL), ("a/b", ErrorKind::EINVAL), ("a\0b", ErrorKind::EINVAL)];
        for (n, kind) in cases {
            assert_eq!(validate_name(n).unwrap_err().kind, kind, "{n:?}");
        }
        assert_eq!(validate_name(&"x".repeat(256)).unwrap_err().kind, ErrorKind::ENAMETOOLONG);
        // 255 bytes means bytes, not characters.
        assert_eq!(validate_name(&"é".repeat(128)).unwrap_err().kind, ErrorKind::ENAMETOOLONG);
    }

    #[test]
    fn paths_split_into_components() {
        assert_eq!(split_path("/").unwrap(), Vec::<&str>::new());
        assert_eq!(split_path("//a//b/").unwrap(), vec!["a", "b"]);
        assert_eq!(split_path("a/b").unwrap_err().kind, ErrorKind::EINVAL);
        assert_eq!(split_path("/a/../b").unwrap_err().kind, ErrorKind::EINVAL);
        let long = format!("/{}", "a/".repeat(2100));
        assert_eq!(split_path(&long).unwrap_err().kind, ErrorKind::ENAMETOOLONG);
    }
}
