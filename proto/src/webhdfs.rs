//! The WebHDFS protocol (Apache Hadoop's REST API, `/webhdfs/v1/<path>?op=`)
//! as dfs speaks it: operations and their HTTP methods, the JSON shapes of
//! the answers, and errors as `RemoteException`s. The master serves the
//! namespace operations and redirects data to a chunkserver, which serves
//! `CREATE`, `APPEND`, `OPEN` and `GETFILECHECKSUM` (as a DataNode does).

use std::collections::HashMap;

use serde::Serialize;

use crate::ErrorKind;

/// The route prefix; the path follows it.
pub const PREFIX: &str = "/webhdfs/v1";

/// The query parameter that carries the master's grant on a redirect to a
/// chunkserver (HDFS puts a delegation token there; a grant is ours).
pub const GRANT_PARAM: &str = "dfsgrant";

/// Longest query string taken (the HTTP head is bounded anyway).
const MAX_QUERY: usize = 16 << 10;

/// A request's parameters, names lower-cased (Hadoop's are case-blind);
/// the first of a repeated name counts (HdfsCLI repeats `user.name` on
/// the data node's URL).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Params, RemoteError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY {
            return Err(RemoteError::illegal_argument(format!("the query is over {MAX_QUERY} bytes")));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| RemoteError::illegal_argument(format!("malformed query: {e}")))?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k.to_ascii_lowercase()).or_insert(v);
        }
        Ok(Params(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The dfs path a request names: the URL's path after the prefix,
/// percent-decoded (a `+` stays a `+`), absolute, without a trailing slash.
pub fn dfs_path(uri_path: &str) -> Result<String, RemoteError> {
    let rest = uri_path.strip_prefix(PREFIX).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(rest).decode_utf8().map_err(|_| RemoteError::illegal_argument("the path is not UTF-8"))?;
    let trimmed = decoded.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".into());
    }
    if !trimmed.starts_with('/') {
        return Err(RemoteError::illegal_argument(format!("{trimmed:?} is not an absolute path")));
    }
    Ok(trimmed.to_string())
}

/// The operations dfs serves, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Open,
    GetFileStatus,
    ListStatus,
    ListStatusBatch,
    GetContentSummary,
    GetFileChecksum,
    GetHomeDirectory,
    GetTrashRoot,
    CheckAccess,
    GetServerDefaults,
    GetFileBlockLocations,
    GetDelegationToken,
    Create,
    Mkdirs,
    CreateSymlink,
    Rename,
    SetReplication,
    SetOwner,
    SetPermission,
    SetTimes,
    RenewDelegationToken,
    CancelDelegationToken,
    Append,
    Truncate,
    Concat,
    Delete,
}

/// Every operation: its name, its HTTP method, and what it is (`None`:
/// known to WebHDFS, not served by dfs: `UnsupportedOperationException`).
const OPS: &[(&str, &str, Option<Op>)] = &[
    ("OPEN", "GET", Some(Op::Open)),
    ("GETFILESTATUS", "GET", Some(Op::GetFileStatus)),
    ("LISTSTATUS", "GET", Some(Op::ListStatus)),
    ("LISTSTATUS_BATCH", "GET", Some(Op::ListStatusBatch)),
    ("GETCONTENTSUMMARY", "GET", Some(Op::GetContentSummary)),
    ("GETFILECHECKSUM", "GET", Some(Op::GetFileChecksum)),
    ("GETHOMEDIRECTORY", "GET", Some(Op::GetHomeDirectory)),
    ("GETTRASHROOT", "GET", Some(Op::GetTrashRoot)),
    ("CHECKACCESS", "GET", Some(Op::CheckAccess)),
    ("GETSERVERDEFAULTS", "GET", Some(Op::GetServerDefaults)),
    ("GETFILEBLOCKLOCATIONS", "GET", Some(Op::GetFileBlockLocations)),
    ("GETDELEGATIONTOKEN", "GET", Some(Op::GetDelegationToken)),
    ("GET_BLOCK_LOCATIONS", "GET", None),
    ("GETQUOTAUSAGE", "GET", None),
    ("GETXATTRS", "GET", None),
    ("LISTXATTRS", "GET", None),
    ("GETACLSTATUS", "GET", None),
    ("GETSTORAGEPOLICY", "GET", None),
    ("GETALLSTORAGEPOLICY", "GET", None),
    ("GETSNAPSHOTDIFF", "GET", None),
    ("GETSNAPSHOTTABLEDIRECTORYLIST", "GET", None),
    ("GETECPOLICY", "GET", None),
    ("GETSTATUS", "GET", None),
    ("CREATE", "PUT", Some(Op::Create)),
    ("MKDIRS", "PUT", Some(Op::Mkdirs)),
    ("CREATESYMLINK", "PUT", Some(Op::CreateSymlink)),
    ("RENAME", "PUT", Some(Op::Rename)),
    ("SETREPLICATION", "PUT", Some(Op::SetReplication)),
    ("SETOWNER", "PUT", Some(Op::SetOwner)),
    ("SETPERMISSION", "PUT", Some(Op::SetPermission)),
    ("SETTIMES", "PUT", Some(Op::SetTimes)),
    ("RENEWDELEGATIONTOKEN", "PUT", Some(Op::RenewDelegationToken)),
    ("CANCELDELEGATIONTOKEN", "PUT", Some(Op::CancelDelegationToken)),
    ("SETXATTR", "PUT", None),
    ("REMOVEXATTR", "PUT", None),
    ("MODIFYACLENTRIES", "PUT", None),
    ("REMOVEACLENTRIES", "PUT", None),
    ("REMOVEDEFAULTACL", "PUT", None),
    ("REMOVEACL", "PUT", None),
    ("SETACL", "PUT", None),
    ("CREATESNAPSHOT", "PUT", None),
    ("RENAMESNAPSHOT", "PUT", None),
    ("ALLOWSNAPSHOT", "PUT", None),
    ("DISALLOWSNAPSHOT", "PUT", None),
    ("SETSTORAGEPOLICY", "PUT", None),
    ("SATISFYSTORAGEPOLICY", "PUT", None),
    ("SETQUOTA", "PUT", None),
    ("SETQUOTABYSTORAGETYPE", "PUT", None),
    ("ENABLEECPOLICY", "PUT", None),
    ("DISABLEECPOLICY", "PUT", None),
    ("SETECPOLICY", "PUT", None),
    ("APPEND", "POST", Some(Op::Append)),
    ("TRUNCATE", "POST", Some(Op::Truncate)),
    ("CONCAT", "POST", Some(Op::Concat)),
    ("UNSETSTORAGEPOLICY", "POST", None),
    ("UNSETECPOLICY", "POST", None),
    ("DELETE", "DELETE", Some(Op::Delete)),
    ("DELETESNAPSHOT", "DELETE", None),
];

impl Op {
    /// The operation a request names with `op=` (any case, as Hadoop) and
    /// `method`; the error WebHDFS answers otherwise.
    pub fn parse(method: &str, name: Option<&str>) -> Result<Op, RemoteError> {
        let Some(name) = name else {
            return Err(RemoteError::illegal_argument("the \"op\" parameter is missing"));
        };
        let upper = name.to_ascii_uppercase();
        let Some((_, wanted, op)) = OPS.iter().find(|(n, _, _)| *n == upper) else {
            return Err(RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"op\": no operation {upper:?}")));
        };
        if *wanted != method {
            return Err(RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"op\": {upper} is a {wanted}, not a {method}")));
        }
        op.ok_or_else(|| RemoteError::unsupported(format!("{upper} is not supported by dfs")))
    }

    /// The operation's name as WebHDFS spells it.
    pub fn name(self) -> &'static str {
        OPS.iter().find(|(_, _, op)| *op == Some(self)).map_or("?", |(n, _, _)| n)
    }

    /// Whether a chunkserver serves the data of this operation (the
    /// master answers it with a redirect).
    pub fn is_data(self) -> bool {
        matches!(self, Op::Open | Op::Create | Op::Append | Op::GetFileChecksum)
    }
}

/// An error as WebHDFS answers it: a status and a `RemoteException`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteError {
    pub status: u16,
    pub exception: &'static str,
    pub java_class_name: &'static str,
    pub message: String,
}

/// `{"RemoteException": {...}}`, the body of every WebHDFS error.
#[derive(Serialize)]
pub struct RemoteExceptionBody<'a> {
    #[serde(rename = "RemoteException")]
    pub remote_exception: RemoteException<'a>,
}

#[derive(Serialize)]
pub struct RemoteException<'a> {
    pub exception: &'a str,
    #[serde(rename = "javaClassName")]
    pub java_class_name: &'a str,
    pub message: &'a str,
}

impl RemoteError {
    fn new(status: u16, exception: &'static str, java_class_name: &'static str, message: impl Into<String>) -> Self {
        RemoteError { status, exception, java_class_name, message: message.into() }
    }

    /// HDFS's catch-all refusal (403).
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(403, "IOException", "java.io.IOException", message)
    }

    pub fn illegal_argument(message: impl Into<String>) -> Self {
        Self::new(400, "IllegalArgumentException", "java.lang.IllegalArgumentException", message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(400, "UnsupportedOperationException", "java.lang.UnsupportedOperationException", message)
    }

    /// Not authenticated (no user, a bad or expired token).
    pub fn security(message: impl Into<String>) -> Self {
        Self::new(401, "SecurityException", "java.lang.SecurityException", message)
    }

    /// A delegation token that is unknown, cancelled or expired: 403, as
    /// HDFS answers an `InvalidToken` (401 is for no credentials at all).
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(403, "SecurityException", "java.lang.SecurityException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "FileNotFoundException", "java.io.FileNotFoundException", message)
    }

    /// A follower's answer when masters are replicated (HDFS's standby).
    pub fn standby(message: impl Into<String>) -> Self {
        Self::new(403, "StandbyException", "org.apache.hadoop.ipc.StandbyException", message)
    }

    /// A dfs error as the Hadoop exception HDFS throws for the same case,
    /// with Hadoop's status for it (an `IOException` is 403 there; a
    /// failure of dfs itself stays a 500). `path` makes the messages
    /// clients match on ("File does not exist: /a").
    pub fn from_kind(kind: ErrorKind, message: &str, path: &str) -> Self {
        match kind {
            ErrorKind::ENOENT => Self::not_found(format!("File does not exist: {path} ({message})")),
            ErrorKind::EISDIR => Self::not_found(format!("Path is not a file: {path}")),
            ErrorKind::EACCES | ErrorKind::EPERM => {
                Self::new(403, "AccessControlException", "org.apache.hadoop.security.AccessControlException", format!("Permission denied: {message}"))
            }
            ErrorKind::EEXIST => {
                Self::new(403, "FileAlreadyExistsException", "org.apache.hadoop.fs.FileAlreadyExistsException", format!("{path} already exists ({message})"))
            }
            ErrorKind::ENOTEMPTY => Self::new(
                403,
                "PathIsNotEmptyDirectoryException",
                "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException",
                format!("`{path} is non empty': Directory is not empty"),
            ),
            ErrorKind::ENOTDIR => Self::new(403, "ParentNotDirectoryException", "org.apache.hadoop.fs.ParentNotDirectoryException", message.to_string()),
            ErrorKind::ENOTSUP => Self::unsupported(message),
            ErrorKind::EKEYREJECTED | ErrorKind::EKEYEXPIRED => Self::security(message),
            ErrorKind::ENOSPC => Self::new(403, "DSQuotaExceededException", "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException", message.to_string()),
            ErrorKind::EINVAL | ErrorKind::ENAMETOOLONG | ErrorKind::ERANGE | ErrorKind::E2BIG | ErrorKind::EMSGSIZE | ErrorKind::EFBIG => {
                Self::illegal_argument(message)
            }
            ErrorKind::EAGAIN => Self::new(403, "RetriableException", "org.apache.hadoop.ipc.RetriableException", message.to_string()),
            ErrorKind::EMLINK | ErrorKind::ENODATA | ErrorKind::ESTALE => Self::new(403, "IOException", "java.io.IOException", message.to_string()),
            ErrorKind::EIO => Self::new(500, "IOException", "java.io.IOException", message.to_string()),
        }
    }

    pub fn body(&self) -> RemoteExceptionBody<'_> {
        RemoteExceptionBody { remote_exception: RemoteException { exception: self.exception, java_class_name: self.java_class_name, message: &self.message } }
    }
}

/// A boolean parameter: `true` or `false`, any case (Hadoop's parsing).
pub fn parse_bool(name: &str, value: Option<&str>, default: bool) -> Result<bool, RemoteError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"{name}\": {other:?} is not a boolean"))),
    }
}

/// An integer parameter within `range`.
pub fn parse_int(name: &str, value: Option<&str>, range: std::ops::RangeInclusive<i64>) -> Result<Option<i64>, RemoteError> {
    let Some(text) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let bad = || {
        RemoteError::illegal_argument(format!(
            "Invalid value for webhdfs parameter \"{name}\": {text:?} is not an integer from {} to {}",
            range.start(),
            range.end()
        ))
    };
    let n: i64 = text.parse().map_err(|_| bad())?;
    if !range.contains(&n) {
        return Err(bad());
    }
    Ok(Some(n))
}

/// A `permission` parameter: octal, up to `1777` (Hadoop keeps the sticky
/// bit and the rwx bits, no setuid/setgid).
pub fn parse_permission(value: Option<&str>) -> Result<Option<u32>, RemoteError> {
    let Some(text) = value.filter(|v| !v.is_empty()) else { return Ok(None) };
    let bad =
        || RemoteError::illegal_argument(format!("Invalid value for webhdfs parameter \"permission\": {text:?} is not an octal permission from 0 to 1777"));
    if text.len() > 4 {
        return Err(bad());
    }
    let mode = u32::from_str_radix(text, 8).map_err(|_| bad())?;
    if mode > 0o1777 {
        return Err(bad());
    }
    Ok(Some(mode))
}

/// A file's type as WebHDFS names it.
pub fn type_name(kind: crate::wire::namespace::FileKind) -> &'static str {
    use crate::wire::namespace::FileKind;
    match kind {
        FileKind::Dir => "DIRECTORY",
        FileKind::Symlink => "SYMLINK",
        _ => "FILE",
    }
}

/// `FileStatus`: one file's attributes as WebHDFS shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    pub access_time: i64,
    pub block_size: u64,
    pub children_num: u64,
    pub file_id: u64,
    pub group: String,
    pub length: u64,
    pub modification_time: i64,
    pub owner: String,
    pub path_suffix: String,
    pub permission: String,
    pub replication: u16,
    pub storage_policy: u8,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
}

#[derive(Serialize)]
pub struct FileStatusBody {
    #[serde(rename = "FileStatus")]
    pub file_status: FileStatus,
}

#[derive(Serialize)]
pub struct FileStatuses {
    #[serde(rename = "FileStatus")]
    pub file_status: Vec<FileStatus>,
}

#[derive(Serialize)]
pub struct FileStatusesBody {
    #[serde(rename = "FileStatuses")]
    pub file_statuses: FileStatuses,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialListing {
    #[serde(rename = "FileStatuses")]
    pub file_statuses: FileStatuses,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryListing {
    pub partial_listing: PartialListing,
    pub remaining_entries: u64,
}

#[derive(Serialize)]
pub struct DirectoryListingBody {
    #[serde(rename = "DirectoryListing")]
    pub directory_listing: DirectoryListing,
}

#[derive(Serialize)]
pub struct BooleanBody {
    pub boolean: bool,
}

#[derive(Serialize)]
pub struct PathBody {
    #[serde(rename = "Path")]
    pub path: String,
}

#[derive(Serialize)]
pub struct LocationBody {
    #[serde(rename = "Location")]
    pub location: String,
}

#[derive(Serialize)]
pub struct LongBody {
    pub long: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentSummary {
    pub directory_count: u64,
    pub file_count: u64,
    pub length: u64,
    pub quota: i64,
    pub space_consumed: u64,
    pub space_quota: i64,
    pub type_quota: EmptyObject,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EmptyObject {}

#[derive(Serialize)]
pub struct ContentSummaryBody {
    #[serde(rename = "ContentSummary")]
    pub content_summary: ContentSummary,
}

/// A file's checksum: dfs gives HDFS's `COMPOSITE-CRC32C` (the CRC32C of
/// the whole byte stream, whatever the chunk size), so the same bytes in
/// HDFS and dfs compare equal.
#[derive(Serialize)]
pub struct FileChecksum {
    pub algorithm: &'static str,
    pub bytes: String,
    pub length: u32,
}

#[derive(Serialize)]
pub struct FileChecksumBody {
    #[serde(rename = "FileChecksum")]
    pub file_checksum: FileChecksum,
}

impl FileChecksum {
    pub fn composite_crc32c(crc: u32) -> Self {
        FileChecksum { algorithm: "COMPOSITE-CRC32C", bytes: format!("{crc:08x}"), length: 4 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_parsed_by_name_and_method() {
        assert_eq!(Op::parse("GET", Some("liststatus")), Ok(Op::ListStatus));
        assert_eq!(Op::parse("PUT", Some("CREATE")), Ok(Op::Create));
        assert_eq!(Op::parse("GET", Some("CREATE")).unwrap_err().exception, "IllegalArgumentException");
        assert_eq!(Op::parse("GET", Some("NOPE")).unwrap_err().status, 400);
        assert_eq!(Op::parse("GET", None).unwrap_err().status, 400);
        let unset = Op::parse("POST", Some("UNSETSTORAGEPOLICY")).unwrap_err();
        assert_eq!((unset.status, unset.exception), (400, "UnsupportedOperationException"));
        for (name, method, op) in OPS {
            if let Some(op) = op {
                assert_eq!(op.name(), *name);
                assert_eq!(Op::parse(method, Some(name)), Ok(*op));
            }
        }
    }

    #[test]
    fn paths_are_decoded_and_made_absolute() {
        assert_eq!(dfs_path("/webhdfs/v1").unwrap(), "/");
        assert_eq!(dfs_path("/webhdfs/v1/").unwrap(), "/");
        assert_eq!(dfs_path("/webhdfs/v1/a/b%20c+d/").unwrap(), "/a/b c+d");
        assert_eq!(dfs_path("/webhdfs/v1/%E2%82%AC").unwrap(), "/€");
        assert!(dfs_path("/webhdfs/v1/%FF").is_err());
    }

    #[test]
    fn parameter_names_are_case_blind_and_the_first_counts() {
        let p = Params::parse(Some("OP=liststatus&startAfter=x&op=other&user.name=bob&destination=%2Fa+b")).unwrap();
        assert_eq!(p.get("op"), Some("liststatus"));
        assert_eq!(p.get("startafter"), Some("x"));
        assert_eq!(p.get("user.name"), Some("bob"));
        assert_eq!(p.get("destination"), Some("/a b"));
        assert!(Params::parse(Some(&"a".repeat(MAX_QUERY + 1))).is_err());
    }

    #[test]
    fn parameters_are_range_checked() {
        assert_eq!(parse_permission(Some("755")), Ok(Some(0o755)));
        assert_eq!(parse_permission(Some("1777")), Ok(Some(0o1777)));
        assert!(parse_permission(Some("4755")).is_err());
        assert!(parse_permission(Some("9")).is_err());
        assert!(parse_permission(Some("-1")).is_err());
        assert!(parse_permission(Some("0000755")).is_err());
        assert_eq!(parse_bool("overwrite", Some("TRUE"), false), Ok(true));
        assert!(parse_bool("overwrite", Some("yes"), false).is_err());
        assert_eq!(parse_int("offset", Some("5"), 0..=10), Ok(Some(5)));
        assert!(parse_int("offset", Some("11"), 0..=10).is_err());
        assert!(parse_int("offset", Some("99999999999999999999"), 0..=i64::MAX).is_err());
        assert_eq!(parse_int("offset", None, 0..=10), Ok(None));
    }

    #[test]
    fn errors_are_hadoops_exceptions() {
        let e = RemoteError::from_kind(ErrorKind::ENOENT, "no /a", "/a");
        assert_eq!((e.status, e.exception), (404, "FileNotFoundException"));
        assert!(e.message.contains("does not exist"));
        assert_eq!(RemoteError::from_kind(ErrorKind::EACCES, "x", "/a").status, 403);
        assert_eq!(RemoteError::from_kind(ErrorKind::EEXIST, "x", "/a").exception, "FileAlreadyExistsException");
        assert_eq!(RemoteError::from_kind(ErrorKind::EKEYREJECTED, "x", "/a").status, 401);
    }
}
